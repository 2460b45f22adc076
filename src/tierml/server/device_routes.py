"""The endpoints devices call: enrol (the one-time token authenticates), then check in,
upload telemetry and download their artifact, each request signed (RFC 9421)."""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from tierml.api import fleet
from tierml.server.bodies import EMPTY_LIMIT, JSON_LIMIT, bounded_body
from tierml.server.handling import ServerState, answer, clock, header_pairs, signed_target


def device_routes(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/enroll")
    async def enroll(request: Request) -> Response:
        async def work() -> Response:
            body = await bounded_body(request, JSON_LIMIT)
            done = await run_in_threadpool(fleet.enroll, state.connection, body, now=clock())
            state.metrics.enrolments.inc()
            state.metrics.devices_enrolled.inc()
            return JSONResponse(done.to_dict(), status_code=201)

        return await answer(state, request, work)

    @router.post("/check-in")
    async def check_in(request: Request) -> Response:
        async def work() -> Response:
            started = time.perf_counter()
            body = await bounded_body(request, JSON_LIMIT)
            reply = await run_in_threadpool(
                fleet.check_in, state.connection, request.method, signed_target(request),
                header_pairs(request), body, now=clock(),
            )  # fmt: skip
            state.metrics.check_ins.inc()
            state.metrics.check_in_seconds.observe(time.perf_counter() - started)
            return JSONResponse(reply.to_dict())

        return await answer(state, request, work)

    @router.post("/telemetry")
    async def telemetry(request: Request) -> Response:
        async def work() -> Response:
            body = await bounded_body(request, JSON_LIMIT)
            ingested = await run_in_threadpool(
                fleet.upload_telemetry, state.connection, request.method,
                signed_target(request), header_pairs(request), body, now=clock(),
            )  # fmt: skip
            counted = state.metrics.telemetry_batches
            counted.labels("new").inc(ingested.new)
            counted.labels("duplicate").inc(len(ingested.acked) - ingested.new)
            return JSONResponse(ingested.to_dict())

        return await answer(state, request, work)

    @router.get("/artifacts/{sha256}")
    async def artifact(request: Request, sha256: str) -> Response:
        async def work() -> Response:
            body = await bounded_body(request, EMPTY_LIMIT)
            found = await run_in_threadpool(
                fleet.artifact_path, state.connection, request.method, signed_target(request),
                header_pairs(request), body, sha256, now=clock(),
            )  # fmt: skip
            digest = base64.b64encode(bytes.fromhex(found.sha256)).decode("ascii")
            return FileResponse(
                found.path,
                media_type="application/octet-stream",
                headers={"Repr-Digest": f"sha-256=:{digest}:"},  # RFC 9530: the whole file's
            )

        return await answer(state, request, work)

    return router
