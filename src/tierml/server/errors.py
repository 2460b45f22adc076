"""Errors as HTTP answers: a status per error code and one JSON shape for every refusal.

``{"error": {"code", "message", "hint", "details"}}``: the same code, message, hint and
details the library raised, so a device agent matches on ``code`` and reads
``details["reason"]`` as any other caller does. Anything that is not a library error is a
fault of the server: it is logged whole and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tierml.core.errors import (
    AuthenticationError,
    FleetNotFoundError,
    InputDataError,
    TiermlError,
)

log = logging.getLogger("tierml.server")

# Status by code; any other library error is bad input (400).
STATUS_BY_CODE = {
    "E_AUTH": 401,
    "E_ENROLL": 401,
    "E_FORBIDDEN": 403,
    "E_FLEET_NOT_FOUND": 404,
    "E_REGISTRY_NOT_FOUND": 404,
    "E_REGISTRY_DUPLICATE": 409,
    "E_TOO_LARGE": 413,
    "E_REGISTRY": 503,  # the database failed: retry later
    "E_REGISTRY_INTEGRITY": 500,  # a stored artifact is missing or corrupt: the server's fault
}
INTERNAL = {
    "code": "E_INTERNAL",
    "message": "The control plane failed to handle the request; the failure is logged.",
    "hint": "Retry later; if it persists, the control plane's operator has the log.",
    "details": {},
}


def status_of(error: TiermlError) -> int:
    return STATUS_BY_CODE.get(error.code, 400)


def error_body(error: TiermlError) -> dict[str, Any]:
    said = error.to_dict()
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "hint": error.hint,
            "details": said.get("details", {}),
        }
    }


def error_response(error: TiermlError, status: int | None = None) -> JSONResponse:
    headers = None
    if isinstance(error, AuthenticationError) and error.details.get("reason") == "admin_token":
        headers = {"WWW-Authenticate": 'Bearer realm="tierml"'}
    return JSONResponse(error_body(error), status_code=status or status_of(error), headers=headers)


def internal_error(request_line: str) -> JSONResponse:
    log.exception("unexpected failure handling %s", request_line)
    return JSONResponse({"error": INTERNAL}, status_code=500)


async def http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Routing's own refusals (no such endpoint, another method) in the coded shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    where = f"{request.method} {request.url.path[:200]}"
    error: TiermlError
    if status == 404:
        error = FleetNotFoundError(
            f"No endpoint {where}.", hint="See the control plane's endpoint list."
        )
    else:
        error = InputDataError(
            f"{where} was refused: {getattr(exc, 'detail', 'bad request')}.",
            hint="Use the method and path the endpoint list gives.",
        )
    return error_response(error, status)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    error = InputDataError(
        f"{request.method} {request.url.path[:200]} has invalid parameters.",
        hint="Send the parameters the endpoint defines, with their types.",
    )
    return error_response(error, 422)


HANDLERS: dict[Any, Any] = {
    HTTPException: http_exception,
    RequestValidationError: validation_error,
}
