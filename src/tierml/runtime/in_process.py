"""A bundle's tiers served in this process: the same tier services and OIP v2 messages as
the tier processes, handed over by a method call instead of gRPC.

``InProcessTransport`` gives a ``ModelInferRequest`` to a ``TierService`` living here and
takes its ``ModelInferResponse`` back: no sockets, no serialisation, no subprocess. A
service's abort (status + ``tierml-code`` / ``tierml-tier`` trailing metadata) becomes the
typed error the gRPC transport raises for the same answer, an exception escaping a
handler becomes UNKNOWN as gRPC makes it, and messages above the gRPC size limit are
refused with RESOURCE_EXHAUSTED as a channel would. ``InProcessDeployment`` stands a whole
bundle up this way, with the lifecycle of ``Deployment`` (start, stop, kill, restart,
``addresses``, ``connect``, ``log``), for callers that exercise the runtime rather than
the wire: each tier's partitions run on the calling thread, unpinned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from tritonclient.grpc import service_pb2 as pb

from tierml.runtime.batching import DEFAULT_WINDOW_MS, check_batching
from tierml.runtime.bundle import Bundle, load_bundle
from tierml.runtime.tier_server import TierConfig, TierService
from tierml.runtime.transport import MAX_MESSAGE_BYTES, Transport, typed_error

SCHEME = "inproc:"


class _Aborted(Exception):
    """A handler's ``context.abort``: gRPC raises to unwind the handler, so does this."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class _Context:
    """The part of ``grpc.ServicerContext`` a tier service uses."""

    def __init__(self) -> None:
        self.trailing: dict[str, str] = {}

    def set_trailing_metadata(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.trailing = {str(k): str(v) for k, v in pairs}

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Aborted(code, details)

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None


@dataclass(frozen=True)
class Outcome:
    """One call's answer as a client sees it: a response, or a status with its details and
    trailing metadata."""

    response: Any
    code: grpc.StatusCode
    details: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def call_in_process(service: TierService, method: str, request: Any) -> Outcome:
    """Call ``service.<method>(request)`` as a gRPC server would for a client."""
    if method == "ModelInfer" and request.ByteSize() > MAX_MESSAGE_BYTES:
        return Outcome(None, grpc.StatusCode.RESOURCE_EXHAUSTED, _too_large(request))
    context = _Context()
    try:
        response = getattr(service, method)(request, context)
    except _Aborted as exc:
        return Outcome(None, exc.code, exc.details, context.trailing)
    except Exception as exc:  # a handler's bug: what gRPC answers for it
        details = f"Exception calling application: {exc}"
        return Outcome(None, grpc.StatusCode.UNKNOWN, details, context.trailing)
    if method == "ModelInfer" and response.ByteSize() > MAX_MESSAGE_BYTES:
        return Outcome(None, grpc.StatusCode.RESOURCE_EXHAUSTED, _too_large(response))
    return Outcome(response, grpc.StatusCode.OK, "", context.trailing)


def _too_large(message: Any) -> str:
    return f"Sent message larger than max ({message.ByteSize()} vs. {MAX_MESSAGE_BYTES})"


class InProcessTransport:
    """A tier served in this process, found through ``lookup`` at every call (None: the
    tier is not serving, as a killed process is not)."""

    def __init__(self, tier: str, lookup: Callable[[], TierService | None]) -> None:
        self.tier, self._lookup = tier, lookup

    def infer(self, request: pb.ModelInferRequest, *, timeout_s: float) -> pb.ModelInferResponse:
        response: pb.ModelInferResponse = self._call("ModelInfer", request)
        return response

    def live(self, *, timeout_s: float) -> bool:
        return bool(self._call("ServerLive", pb.ServerLiveRequest()).live)

    def ready(self, *, timeout_s: float) -> bool:
        return bool(self._call("ServerReady", pb.ServerReadyRequest()).ready)

    def close(self) -> None:
        pass  # nothing held: the deployment owns the services

    def _call(self, method: str, request: Any) -> Any:
        service = self._lookup()
        if service is None:
            raise typed_error(
                grpc.StatusCode.UNAVAILABLE, {}, "not serving in this process", self.tier
            )
        outcome = call_in_process(service, method, request)
        if outcome.code is not grpc.StatusCode.OK:
            raise typed_error(outcome.code, outcome.metadata, outcome.details, self.tier)
        return outcome.response


class InProcessDeployment:
    """A bundle's remote tiers as services in this process; the shape of ``Deployment``:
    ``DeviceClient(bundle_dir, dep.addresses, connect=dep.connect)``."""

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        seed: int = 0,
        timeout_s: float = 5.0,
        max_batch: int = 1,
        batch_window_ms: float = DEFAULT_WINDOW_MS,
    ) -> None:
        check_batching(max_batch, batch_window_ms)
        self.max_batch, self.batch_window_ms = max_batch, batch_window_ms
        self.root = Path(bundle_dir)
        self.bundle: Bundle = load_bundle(self.root)
        self.seed, self.timeout_s = seed, timeout_s
        self.remote = [t for t in self.bundle.tiers if t.name != self.bundle.origin]
        self.addresses: dict[str, str] = {}
        self.services: dict[str, TierService] = {}
        self._logs: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def connect(self, tier: str, address: str) -> Transport:
        return InProcessTransport(tier, lambda: self._serving(address))

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> InProcessDeployment:
        self.addresses = {t.name: SCHEME + t.name for t in self.remote}
        try:
            for tier in self.remote:
                self._spawn(tier.name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        with self._lock:
            services, self.services = list(self.services.values()), {}
        for service in services:
            service.close()

    def kill(self, tier: str) -> None:
        """Stop serving ``tier`` at once (a fault): later calls find it unavailable."""
        with self._lock:
            service = self.services.pop(tier)
        service.close()

    def restart(self, tier: str) -> None:
        self._spawn(tier)

    def log(self, tier: str) -> str:
        return "".join(line + "\n" for line in self._logs.get(tier, ()))

    def __enter__(self) -> InProcessDeployment:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------
    def _spawn(self, tier: str) -> None:
        spec = self.bundle.tier(tier)
        config = TierConfig(
            bundle=str(self.root.resolve()),
            tier=tier,
            peers=self.addresses,
            threads=spec.threads,
            seed=self.seed,
            timeout_s=self.timeout_s,
            max_batch=self.max_batch,
            batch_window_ms=self.batch_window_ms,
        )
        log = self._logs.setdefault(tier, [])
        service = TierService(config, connect=self.connect, log=log.append)
        with self._lock:
            self.services[tier] = service

    def _serving(self, address: str) -> TierService | None:
        tier = address.removeprefix(SCHEME)
        with self._lock:
            if self.addresses.get(tier) != address:
                return None
            return self.services.get(tier)
