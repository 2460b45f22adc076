"""Structured Field Values for HTTP (RFC 8941): parse and serialize Dictionaries.

Signature-Input, Signature and Content-Digest are Dictionaries whose members are Items or
Inner Lists, each with Parameters. The parser follows RFC 8941 §4.2 step by step and is
strict: anything outside the grammar raises :class:`StructuredFieldError` and nothing
else, so a verifier can turn every malformed header into one refusal.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


class Token(str):
    """An sf-token, a bare identifier (``application/json``, ``*``): distinct from a String,
    as ``sig1=abc`` is not ``sig1="abc"``."""

    __slots__ = ()


BareItem = int | Decimal | str | Token | bytes | bool
# In order: RFC 8941 parameters and dictionaries are ordered maps.
Parameters = Mapping[str, BareItem]


class StructuredFieldError(ValueError):
    """A header value outside the Structured Fields grammar (RFC 8941)."""


@dataclass(frozen=True)
class Item:
    value: BareItem
    params: Parameters = field(default_factory=dict)


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: Parameters = field(default_factory=dict)


Member = Item | InnerList

_KEY_FIRST = set(string.ascii_lowercase + "*")
_KEY_REST = set(string.ascii_lowercase + string.digits + "_-.*")
_TCHAR = set("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
_TOKEN_REST = _TCHAR | {":", "/"}
_BASE64 = set(string.ascii_letters + string.digits + "+/=")
_MAX_INTEGER = 999_999_999_999_999
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")


class _Parser:
    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise StructuredFieldError("a structured field is ASCII only")
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        return char

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def dictionary(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        while not self.at_end():
            key = self.key()
            member: Member
            if self.peek() == "=":
                self.pos += 1
                member = self.item_or_inner_list()
            else:
                member = Item(True, self.parameters())
            members.pop(key, None)  # a repeated key takes the later value, in the later place
            members[key] = member
            self.skip_ows()
            if self.at_end():
                return members
            if self.take() != ",":
                raise StructuredFieldError("dictionary members are separated by commas")
            self.skip_ows()
            if self.at_end():
                raise StructuredFieldError("a dictionary ends after a trailing comma")
        return members

    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return Item(self.bare_item(), self.parameters())

    def inner_list(self) -> InnerList:
        self.pos += 1  # "("
        items: list[Item] = []
        while not self.at_end():
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.parameters())
            items.append(Item(self.bare_item(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise StructuredFieldError("inner-list items are separated by spaces")
        raise StructuredFieldError("an inner list is not closed")

    def parameters(self) -> Parameters:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params.pop(key, None)  # a repeated key takes the later value, in the later place
            params[key] = value
        return params

    def key(self) -> str:
        if self.peek() not in _KEY_FIRST or not self.peek():
            raise StructuredFieldError("a key starts with a lowercase letter or '*'")
        start = self.pos
        while self.peek() and self.peek() in _KEY_REST:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit():
            return self.number()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char and (char.isalpha() or char == "*"):
            return self.token()
        raise StructuredFieldError("not a structured-field item")

    def number(self) -> int | Decimal:
        sign = -1 if self.peek() == "-" else 1
        if sign < 0:
            self.pos += 1
        if not self.peek().isdigit():
            raise StructuredFieldError("a number needs a digit")
        start = self.pos
        is_decimal = False
        while self.peek() and (self.peek().isdigit() or self.peek() == "."):
            if self.peek() == ".":
                if is_decimal or self.pos - start > 12:
                    raise StructuredFieldError("a decimal has at most 12 integer digits")
                is_decimal = True
            self.pos += 1
            if not is_decimal and self.pos - start > 15:
                raise StructuredFieldError("an integer has at most 15 digits")
            if is_decimal and self.pos - start > 16:
                raise StructuredFieldError("a decimal has at most 16 characters")
        digits = self.text[start : self.pos]
        if not is_decimal:
            return sign * int(digits)
        if digits.endswith(".") or len(digits.split(".")[1]) > 3:
            raise StructuredFieldError("a decimal has 1 to 3 fractional digits")
        return sign * Decimal(digits)

    def string(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while not self.at_end():
            char = self.take()
            if char == "\\":
                escaped = self.take()
                if escaped not in ('"', "\\"):
                    raise StructuredFieldError("a string escapes only '\"' and '\\'")
                out.append(escaped)
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise StructuredFieldError("a string holds printable ASCII only")
            else:
                out.append(char)
        raise StructuredFieldError("a string is not closed")

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() and self.peek() in _TOKEN_REST:
            self.pos += 1
        return Token(self.text[start : self.pos])

    def byte_sequence(self) -> bytes:
        self.pos += 1  # opening colon
        end = self.text.find(":", self.pos)
        if end < 0:
            raise StructuredFieldError("a byte sequence is not closed")
        encoded = self.text[self.pos : end]
        self.pos = end + 1
        if not set(encoded) <= _BASE64:
            raise StructuredFieldError("a byte sequence is base64")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise StructuredFieldError("a byte sequence is base64") from error

    def boolean(self) -> bool:
        self.pos += 1  # "?"
        char = self.take()
        if char not in ("0", "1"):
            raise StructuredFieldError("a boolean is ?0 or ?1")
        return char == "1"


def parse_dictionary(text: str) -> dict[str, Member]:
    """A Dictionary field value (RFC 8941 §4.2), members in order; an empty value is empty."""
    parser = _Parser(text)
    parser.skip_sp()
    members = parser.dictionary()
    parser.skip_sp()
    if not parser.at_end():
        raise StructuredFieldError("characters after the dictionary")
    return members


def serialize_bare_item(value: BareItem) -> str:
    # bool before int: True is an int to Python, ?1 to RFC 8941.
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INTEGER:
            raise StructuredFieldError(f"integer {value} is out of range")
        return str(value)
    if isinstance(value, Decimal):
        return _serialize_decimal(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        if not _TOKEN.fullmatch(value):
            raise StructuredFieldError("not a valid token")
        return str(value)
    return serialize_string(value)


def serialize_string(value: str) -> str:
    """An sf-string: quoted, with ``\\`` and ``"`` escaped; printable ASCII only."""
    if not all(" " <= char <= "~" for char in value):
        raise StructuredFieldError("a string holds printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_decimal(value: Decimal) -> str:
    rounded = value.quantize(Decimal("0.001"))
    if abs(rounded) >= Decimal(10) ** 12:
        raise StructuredFieldError("a decimal has at most 12 integer digits")
    text = f"{rounded:f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def serialize_parameters(params: Parameters) -> str:
    out = []
    for key, value in params.items():
        if not _KEY.fullmatch(key):
            raise StructuredFieldError(f"not a valid parameter key: {key!r}")
        out.append(";" + key if value is True else f";{key}={serialize_bare_item(value)}")
    return "".join(out)


def serialize_member(member: Member) -> str:
    """An Item or Inner List with its parameters, as in a Dictionary member's value."""
    if isinstance(member, InnerList):
        inner = " ".join(serialize_member(item) for item in member.items)
        return f"({inner}){serialize_parameters(member.params)}"
    return serialize_bare_item(member.value) + serialize_parameters(member.params)


def serialize_dictionary(members: Mapping[str, Member]) -> str:
    out = []
    for key, member in members.items():
        if not _KEY.fullmatch(key):
            raise StructuredFieldError(f"not a valid dictionary key: {key!r}")
        if isinstance(member, Item) and member.value is True:
            out.append(key + serialize_parameters(member.params))
        else:
            out.append(f"{key}={serialize_member(member)}")
    return ", ".join(out)
