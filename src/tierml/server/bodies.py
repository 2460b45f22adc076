"""Request bodies read with a limit: a declared length over it is refused before a byte is
read, and a body streamed without one is cut off as soon as it passes the limit, so a client
cannot make the server buffer more than the limit."""

from __future__ import annotations

from fastapi import Request

from tierml.core.errors import InputDataError, RequestTooLargeError

JSON_LIMIT = 1024 * 1024  # check-ins, telemetry (500 batches fit with room to spare)
ADMIN_LIMIT = 64 * 1024
EMPTY_LIMIT = 1024  # a signed GET carries no body; a little slack costs nothing


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is larger than {limit} bytes.",
        hint="Send less in one request (fewer telemetry batches, say).",
        limit=limit,
    )


async def bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit() or len(declared) > 18:
            raise InputDataError(
                "The Content-Length header is not a number of bytes.",
                hint="Send a valid Content-Length, or none with chunked encoding.",
                field="content-length",
            )
        if int(declared) > limit:
            raise _too_large(limit)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)
