"""The control plane's FastAPI app: device and admin endpoints, health, metrics, and the
background loop that runs the rollout executor.

``create_app`` opens nothing: the app's lifespan opens the workspace's control plane when
the server starts (migrating its database, making the signing key once) and closes it when
the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierml.api import fleet
from tierml.core.workspace import Workspace
from tierml.server.admin_routes import admin_routes
from tierml.server.device_routes import device_routes
from tierml.server.errors import HANDLERS, log
from tierml.server.handling import ServerState, clock
from tierml.server.metrics import CONTENT_TYPE, ServerMetrics

DEFAULT_TICK_S = 5.0
# Methods counted under their own name; any other is "other" (label values stay bounded).
COUNTED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})


class CountRequests:
    """Every answer counted by route template (not the raw path: bounded labels), method
    and status, whichever layer answered (an endpoint, routing's 404, a validation 422)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in COUNTED_METHODS else "other"
            self.metrics.requests.labels(template, method, str(status[0])).inc()


async def run_executor(state: ServerState, tick_s: float) -> None:
    """Step the rollouts and forget old nonces every ``tick_s`` seconds; a failed tick is
    logged and the next one runs (another process's tick, or the database, may be back)."""
    while True:
        try:
            ticked = await run_in_threadpool(fleet.tick, state.connection, now=clock())
            state.metrics.devices_enrolled.set(ticked.devices_enrolled)
            state.metrics.ticks.labels("ok").inc()
            if ticked.actions:
                log.info("executor applied %s", ", ".join(ticked.actions))
        except Exception:
            state.metrics.ticks.labels("failed").inc()
            log.exception("the rollout executor's tick failed")
        await asyncio.sleep(tick_s)


def create_app(
    workspace: Workspace,
    *,
    admin_token: str,
    tick_s: float = DEFAULT_TICK_S,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The control plane for ``workspace``'s database. ``on_ready`` is called once the
    control plane is open, before the first request is answered."""
    state = ServerState(workspace, admin_token, ServerMetrics())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.fleet = await run_in_threadpool(fleet.connect, workspace)
        executor = asyncio.create_task(run_executor(state, tick_s))
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            executor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await executor
            state.connection.close()
            state.fleet = None

    app = FastAPI(
        title="tierml control plane",
        lifespan=lifespan,
        exception_handlers=HANDLERS,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.server = state
    app.include_router(device_routes(state))
    app.include_router(admin_routes(state))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)

    app.add_middleware(CountRequests, metrics=state.metrics)
    return app
