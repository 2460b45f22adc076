"""The signature base of an HTTP request (RFC 9421 §2): component values and the base itself.

A request is plain data: the method, the URL as the receiver sees it (absolute, or the path
and query alone when a proxy hides the host), the header fields and nothing else. Both the
signer and the verifier build the base here, so the two can only differ in the data.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.structured_fields import (
    BareItem,
    InnerList,
    Item,
    StructuredFieldError,
    serialize_member,
    serialize_string,
)

# Header fields as a mapping, or as (name, value) pairs when a name repeats.
HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]

DERIVED_COMPONENTS = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)
_FIELD_NAME = frozenset(string.ascii_lowercase + string.digits + "!#$%&'*+-.^_`|~")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Characters that never belong in a component value: they would split or end a base line.
_FORBIDDEN_IN_VALUES = ("\r", "\n", "\0")


@dataclass(frozen=True)
class RequestParts:
    """A request as the signature base sees it; ``headers`` has lowercase names, one each."""

    method: str
    url: str
    headers: dict[str, str]

    @classmethod
    def of(cls, method: str, url: str, headers: HeaderInput) -> RequestParts:
        return cls(method, url, normalise_headers(headers))


def normalise_headers(headers: HeaderInput) -> dict[str, str]:
    """Lowercase names; values trimmed of outer whitespace; a repeated field's values joined
    with ", " (RFC 9421 §2.1), whichever case each spelling of its name used."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    combined: dict[str, list[str]] = {}
    for name, value in pairs:
        if any(char in value for char in _FORBIDDEN_IN_VALUES):
            raise _malformed(f"header field {name[:40]!r} holds a line break or NUL")
        combined.setdefault(name.lower(), []).append(value.strip(" \t"))
    return {name: ", ".join(values) for name, values in combined.items()}


def component_value(request: RequestParts, name: str) -> str:
    """The value of one covered component: a derived ``@`` component or a header field."""
    if not name.startswith("@"):
        if name not in request.headers:
            raise AuthenticationError(
                AuthFailure.MISSING,
                f"The signature covers header {name[:40]!r}, which the request lacks.",
                header=name[:40],
            )
        return request.headers[name]
    if name not in DERIVED_COMPONENTS:
        raise AuthenticationError(
            AuthFailure.UNSUPPORTED, f"Component {name[:40]!r} is not supported here."
        )
    if name == "@method":
        if not request.method or any(char in request.method for char in " \t\r\n\0"):
            raise _malformed("the method is empty or holds whitespace")
        return request.method  # case-sensitive: never normalised (RFC 9421 §2.2.1)
    parts = _split_url(request.url)
    path = parts.path or "/"
    query = "?" + parts.query
    if name == "@path":
        return path
    if name == "@query":
        return query
    if name == "@request-target":
        return path + (query if parts.query else "")
    scheme = parts.scheme.lower()
    if not scheme:
        raise _malformed(f"{name} needs an absolute URL")
    if name == "@scheme":
        return scheme
    authority = _authority(parts, scheme, request.headers.get("host", ""))
    if name == "@authority":
        return authority
    return f"{scheme}://{authority}{path}" + (query if parts.query else "")  # @target-uri


def signature_params_value(covered: Sequence[str], params: Mapping[str, BareItem]) -> str:
    """The ``@signature-params`` value: the covered components and the parameters, serialised
    as the Signature-Input member carries them (RFC 9421 §2.3)."""
    try:
        return serialize_member(InnerList(tuple(Item(name) for name in covered), dict(params)))
    except StructuredFieldError as error:
        raise _malformed(f"the signature parameters cannot be serialised: {error}") from None


def signature_base(
    request: RequestParts, covered: Sequence[str], params: Mapping[str, BareItem]
) -> bytes:
    """The bytes signed (RFC 9421 §2.5): one ``"name": value`` line per covered component, then
    the ``"@signature-params"`` line, joined by LF with no final LF."""
    check_covered(covered)
    lines = [f"{serialize_string(name)}: {component_value(request, name)}" for name in covered]
    lines.append(f'"@signature-params": {signature_params_value(covered, params)}')
    base = "\n".join(lines)
    if not base.isascii():
        raise _malformed("a covered component's value is not ASCII")
    return base.encode("ascii")


def check_covered(covered: Sequence[str]) -> None:
    """Covered components are distinct, and each a derived name or a lowercase field name."""
    if len(set(covered)) != len(covered):
        raise _malformed("the signature covers a component twice")
    for name in covered:
        if name.startswith("@"):
            continue
        if not name or not set(name) <= _FIELD_NAME:
            raise _malformed(f"{name[:40]!r} is not a lowercase header field name")


def _split_url(url: str) -> SplitResult:
    # urlsplit quietly drops tabs and line breaks; refuse them instead of signing around them.
    if not url.isascii() or any(char <= " " or char == "\x7f" for char in url):
        raise _malformed("the URL holds whitespace, control or non-ASCII characters")
    try:
        return urlsplit(url)
    except ValueError as error:
        raise _malformed(f"the URL cannot be parsed ({error})") from None


def _authority(parts: SplitResult, scheme: str, host_header: str) -> str:
    """Host and port, lowercased, without userinfo or the scheme's default port."""
    authority = (parts.netloc.rpartition("@")[2] or host_header).lower()
    if not authority:
        raise _malformed("the request has no authority (no host in the URL or Host field)")
    host, colon, port = authority.rpartition(":")
    if colon and "]" not in port and (port == "" or port == _DEFAULT_PORTS.get(scheme)):
        authority = host
    return authority


def _malformed(what: str) -> AuthenticationError:
    return AuthenticationError(AuthFailure.MALFORMED, f"The signed request is malformed: {what}.")
