"""The administrator's endpoints: tokens, devices, status, rollouts, rollbacks and events,
each behind ``Authorization: Bearer <admin token>`` (compared in constant time)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tierml.api import fleet
from tierml.core.errors import AuthenticationError, AuthFailure, InputDataError
from tierml.server.bodies import ADMIN_LIMIT, bounded_body
from tierml.server.handling import ServerState, answer, clock


def require_admin(state: ServerState, request: Request) -> None:
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            AuthFailure.ADMIN_TOKEN,
            "An administrator's request needs an Authorization: Bearer header.",
            hint="Send the control plane's admin token as a bearer token.",
        )
    if not hmac.compare_digest(token.strip().encode(), state.admin_token.encode()):
        raise AuthenticationError(
            AuthFailure.ADMIN_TOKEN,
            "The bearer token is not the control plane's admin token.",
            hint="Send the token from the control plane's admin token file.",
        )


def _int_query(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise InputDataError(
            f"Query parameter {name!r} must be a whole number ≥ 0.",
            hint="Give a number.",
            field=name,
        )
    return int(value)


def admin_routes(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1/admin")

    async def admin(
        request: Request, action: Callable[[bytes], Any], status: int = 200, read: bool = False
    ) -> Response:
        async def work() -> Response:
            require_admin(state, request)
            body = await bounded_body(request, ADMIN_LIMIT) if read else b""
            report = await run_in_threadpool(action, body)
            return JSONResponse(report.to_dict(), status_code=status)

        return await answer(state, request, work)

    @router.post("/tokens")
    async def create_token(request: Request) -> Response:
        def act(body: bytes) -> fleet.TokenIssued:
            wanted = fleet.TokenRequest.from_dict(fleet.json_object(body, "token"))
            return fleet.create_token(
                state.connection, wanted.model, wanted.label,
                lifetime=timedelta(seconds=wanted.lifetime_s), now=clock(),
            )  # fmt: skip

        return await admin(request, act, 201, read=True)

    @router.get("/devices")
    async def devices(request: Request) -> Response:
        return await admin(request, lambda _: fleet.list_devices(state.connection))

    @router.get("/status")
    async def status(request: Request) -> Response:
        return await admin(request, lambda _: fleet.fleet_status(state.connection))

    @router.post("/rollouts")
    async def start_rollout(request: Request) -> Response:
        def act(body: bytes) -> fleet.RolloutView:
            wanted = fleet.RolloutRequest.from_dict(fleet.json_object(body, "rollout"))
            return fleet.start_rollout(
                state.connection, wanted.model, wanted.target, wanted.options, now=clock()
            )

        return await admin(request, act, 201, read=True)

    @router.get("/rollouts/{rollout_id}")
    async def rollout(request: Request, rollout_id: str) -> Response:
        return await admin(request, lambda _: fleet.rollout_status(state.connection, rollout_id))

    @router.post("/rollouts/{rollout_id}/rollback")
    async def rollback(request: Request, rollout_id: str) -> Response:
        def act(_: bytes) -> fleet.RolloutView:
            return fleet.rollback(state.connection, rollout_id, now=clock())

        return await admin(request, act)

    @router.get("/events")
    async def events(request: Request) -> Response:
        def act(_: bytes) -> fleet.EventList:
            q = request.query_params
            return fleet.events(
                state.connection, since=_int_query(request, "since", 0),
                limit=_int_query(request, "limit", 100), device=q.get("device"),
                rollout=q.get("rollout"),
            )  # fmt: skip

        return await admin(request, act)

    return router
