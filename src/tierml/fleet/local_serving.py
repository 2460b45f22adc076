"""The device's local inference endpoint: OIP v2 over gRPC on 127.0.0.1 for its applications.

The application calls one model name (the fleet's model) whatever version or variant runs;
behind it is the runtime's tier service over a one-stage bundle of the active artifact
(``serving_bundle``), so requests are checked and answered exactly as a tier answers them,
and any stock OIP client (tritonclient) can call it. A new model is started — its session
made and run once — beside the one serving; only a model that started is swapped in, in
one reference assignment. A request holds the service it started on until it finishes, so
a swap never fails a request in flight; the old service is closed when its last request
is done. Every inference is observed (latency, error, exit taken, memory) for telemetry.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, cast

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tierml.core.errors import (
    DeploymentError,
    InputDataError,
    ModelNotRunnableError,
    TiermlError,
    TierUnavailableError,
)
from tierml.fleet.protocol import Running
from tierml.fleet.serving_bundle import DEVICE_TIER, write_serving_bundle
from tierml.runtime.grpc_service import add_tier_service
from tierml.runtime.hop_record import HOPS_PARAM, hops_from_json
from tierml.runtime.tier_server import MAX_DETAILS, TierConfig, TierService
from tierml.runtime.transport import CODE_KEY, MAX_MESSAGE_BYTES, PROBE_MODEL, TIER_KEY
from tierml.runtime.wire import get_param

LOCALHOST = "127.0.0.1"
WORKERS = 8
# One served request: latency in ms, whether it failed, the exit that took it, memory in MB.
Observer = Callable[[float, bool, str | None, float], None]


@dataclass
class _Loaded:
    service: TierService
    running: Running
    in_flight: int = 0
    retired: bool = False


class LocalEndpoint:
    """Serves ``model_name`` on 127.0.0.1:``port`` (0: any free port)."""

    def __init__(
        self,
        model_name: str,
        *,
        port: int = 0,
        threads: int = 1,
        observe: Observer | None = None,
    ) -> None:
        self.model_name = model_name
        self.requested_port = port
        self.threads = threads
        self.observe = observe
        self.port = 0
        self._current: _Loaded | None = None
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    # -- the server ----------------------------------------------------------------------
    def start(self) -> int:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=WORKERS),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
            ],
        )
        # The tier service's method table, answering through this endpoint's methods.
        add_tier_service(server, cast(TierService, _Methods(self)))
        try:
            port = int(server.add_insecure_port(f"{LOCALHOST}:{self.requested_port}"))
        except RuntimeError:
            port = 0
        if not port:
            raise DeploymentError(
                f"Cannot listen on {LOCALHOST}:{self.requested_port} (in use?).",
                hint="Choose another port for the local endpoint, or 0 for any free one.",
                port=self.requested_port,
            )
        server.start()
        self._server, self.port = server, port
        return port

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace=grace_s).wait()
            self._server = None
        with self._lock:
            loaded, self._current = self._current, None
        if loaded is not None:
            loaded.service.close()

    # -- models --------------------------------------------------------------------------
    @property
    def running(self) -> Running | None:
        loaded = self._current
        return loaded.running if loaded else None

    def start_model(self, artifact: Path, running: Running, folder: Path) -> None:
        """Start ``artifact`` and swap it in; ModelNotRunnableError (or another typed error)
        when it does not start, and the model serving before goes on serving."""
        loaded = _Loaded(self._start_service(artifact, folder), running)
        with self._lock:
            old, self._current = self._current, loaded
            if old is not None:
                old.retired = True
            close_now = old is not None and old.in_flight == 0
        if close_now and old is not None:
            old.service.close()

    def _start_service(self, artifact: Path, folder: Path) -> TierService:
        bundle = write_serving_bundle(artifact, self.model_name, folder)
        config = TierConfig(bundle=str(bundle), tier=DEVICE_TIER, peers={}, threads=self.threads)
        try:
            service = TierService(config)
        except TiermlError:
            raise
        except Exception as error:  # a runtime that breaks on this file: a failed start
            raise ModelNotRunnableError(
                f"The model {artifact.name} does not start: {type(error).__name__}: {error}"[:500],
                file=str(artifact),
            ) from None
        runner = service.runners.get(self.model_name)
        if runner is None:
            service.close()
            raise ModelNotRunnableError(f"The model {artifact.name} has nothing to serve.")
        feeds = {
            name: np.zeros(tuple(d if isinstance(d, int) and d > 0 else 1 for d in shape), dtype)
            for name, (dtype, shape) in runner.schema.items()
        }
        try:
            runner.run(feeds)  # once, on zeros: a model that cannot run fails here, not later
        except InputDataError:
            pass  # it runs, but not on zeros (valid values needed): it started
        except TiermlError:
            service.close()
            raise
        return service

    @contextlib.contextmanager
    def hold(self) -> Iterator[_Loaded | None]:
        """The service serving now, kept open until the request on it is done."""
        with self._lock:
            loaded = self._current
            if loaded is not None:
                loaded.in_flight += 1
        try:
            yield loaded
        finally:
            if loaded is not None:
                with self._lock:
                    loaded.in_flight -= 1
                    done = loaded.retired and loaded.in_flight == 0
                if done:
                    loaded.service.close()


class _Methods(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The OIP v2 methods of the endpoint: health here, the rest by the serving model."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint

    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.endpoint.running is not None)

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name=f"tierml:{DEVICE_TIER}", version="1")

    def ModelReady(self, request: Any, context: Any) -> Any:
        with self.endpoint.hold() as loaded:
            ready = loaded is not None and request.name == self.endpoint.model_name
            return pb.ModelReadyResponse(ready=ready)

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        with self.endpoint.hold() as loaded:
            return self._serving(loaded, context).ModelMetadata(request, context)

    def ModelConfig(self, request: Any, context: Any) -> Any:
        with self.endpoint.hold() as loaded:
            return self._serving(loaded, context).ModelConfig(request, context)

    def ModelInfer(self, request: Any, context: Any) -> Any:
        start = time.perf_counter()
        failed, exit_name = True, None
        try:
            with self.endpoint.hold() as loaded:
                response = self._serving(loaded, context).ModelInfer(request, context)
                failed, exit_name = False, _exit_of(response)
                return response
        finally:
            observe = self.endpoint.observe
            if observe is not None and request.model_name != PROBE_MODEL:
                observe((time.perf_counter() - start) * 1e3, failed, exit_name, memory_mb())

    def _serving(self, loaded: _Loaded | None, context: Any) -> TierService:
        if loaded is None:
            self.refuse(
                context,
                grpc.StatusCode.UNAVAILABLE,
                TierUnavailableError(
                    DEVICE_TIER,
                    "No model is active on this device yet.",
                    hint="Wait for the agent's first check-in and download.",
                ),
            )
        return loaded.service

    def refuse(
        self, context: Any, status: grpc.StatusCode, exc: TiermlError, tier: str = ""
    ) -> NoReturn:
        """As a tier refuses: the status, the error's code and tier as trailing metadata."""
        context.set_trailing_metadata(((CODE_KEY, exc.code), (TIER_KEY, tier or DEVICE_TIER)))
        message = exc.one_line()
        if len(message) > MAX_DETAILS:
            message = message[: MAX_DETAILS - 1] + "…"
        context.abort(status, message)
        raise RuntimeError("grpc abort returned")  # abort raises; unreachable


def _exit_of(response: Any) -> str | None:
    """The exit that took the request, from the tier's hop records."""
    try:
        hops = hops_from_json(get_param(response.parameters, HOPS_PARAM))
    except TiermlError:
        return None
    return next((hop.exit for hop in hops if hop.exit), None)


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_mb() -> float:
    """This process's resident memory now, in MB (its peak where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
