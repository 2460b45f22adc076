"""What every endpoint shares: the server's state, the request as a signature sees it, and
one wrapper that turns whatever a handler raises into the answer it deserves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request, Response
from starlette.requests import ClientDisconnect

from tierml.api.fleet import FleetConnection
from tierml.core.errors import AuthenticationError, InputDataError, TiermlError
from tierml.core.workspace import Workspace
from tierml.server.errors import error_response, internal_error, log
from tierml.server.metrics import ServerMetrics


@dataclass
class ServerState:
    workspace: Workspace
    admin_token: str
    metrics: ServerMetrics
    fleet: FleetConnection | None = None  # open while the app runs

    @property
    def connection(self) -> FleetConnection:
        if self.fleet is None:
            raise RuntimeError("the control plane is not open (the app has not started)")
        return self.fleet


def clock() -> datetime:
    """The server is the edge that reads the clock; the actions below are handed ``now``."""
    return datetime.now(UTC)


def signed_target(request: Request) -> str:
    """The path and query exactly as received (undecoded), which ``@path`` and ``@query``
    cover; the scheme and host are left out, as a TLS-terminating proxy may rewrite them."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode("ascii", "replace")
    query = request.scope.get("query_string", b"")
    target = raw_path.decode("latin-1")
    return target + ("?" + query.decode("latin-1") if query else "")


def header_pairs(request: Request) -> list[tuple[str, str]]:
    """Every header field as received, a repeated one as several pairs."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]


async def answer(
    state: ServerState, request: Request, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Run ``work``; a library error becomes its coded 4xx, anything else a logged 500."""
    try:
        return await work()
    except AuthenticationError as error:
        state.metrics.auth_failures.labels(error.reason.value).inc()
        log.info("refused %s %s: %s", request.method, request.url.path[:200], error.one_line())
        return error_response(error)
    except TiermlError as error:
        return error_response(error)
    except ClientDisconnect:
        return error_response(
            InputDataError("The client went away before sending its whole body.", hint="")
        )
    except Exception:
        return internal_error(f"{request.method} {request.url.path[:200]}")
