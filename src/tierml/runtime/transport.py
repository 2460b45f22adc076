"""How a hop reaches the next tier: the Transport a client or a forwarding tier calls through.

A transport sends OIP v2 ``ModelInferRequest`` messages to one tier and returns its
``ModelInferResponse`` (a stage's request, or the bandwidth probe of ``probe_request``),
and answers liveness and readiness probes. Two implementations speak the same messages:
``GrpcTransport`` over the wire (the KServe v2 / Triton gRPC service), and
``runtime.in_process.InProcessTransport``, which hands them to a tier service in this
process. Either way a failed call raises the same
typed errors, decided from the gRPC status and the ``tierml-code`` / ``tierml-tier``
trailing metadata (never from message text):

- ``TierUnavailableError`` (the tier, or the one behind it that ``tierml-tier`` names, is
  not serving: fall back),
- ``InputDataError`` (the request was refused as malformed),
- ``RemoteError`` (anything else the tier refused or failed at).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tierml.core.errors import InputDataError, RemoteError, TiermlError, TierUnavailableError
from tierml.runtime.wire import set_param

PROBE_MODEL = "tierml.probe"  # every tier answers it at once: a bandwidth probe
# On the probe: hold the reply this many ms (float) before answering, so a probe can stand
# in for a partition's run when measuring what a hop costs beyond the compute.
HOLD_PARAM = "tierml.hold_ms"
MAX_HOLD_MS = 2_000.0  # a probe may keep a tier busy this long at most
MAX_MESSAGE_BYTES = 64 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
# Status codes meaning "this tier (or one behind it) is not serving": fall back.
DOWN_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}
CODE_KEY = "tierml-code"
TIER_KEY = "tierml-tier"


class Transport(Protocol):
    """One tier, as a caller sees it."""

    tier: str

    def infer(self, request: pb.ModelInferRequest, *, timeout_s: float) -> pb.ModelInferResponse:
        """One ModelInfer; a failure raises a typed error (see the module)."""
        ...

    def live(self, *, timeout_s: float) -> bool:
        """ServerLive; TierUnavailableError when the tier does not answer."""
        ...

    def ready(self, *, timeout_s: float) -> bool:
        """ServerReady; TierUnavailableError when the tier does not answer."""
        ...

    def close(self) -> None: ...


# (tier name, address) → a transport to it. A deployment says how its tiers are reached.
Connector = Callable[[str, str], Transport]


def probe_request(nbytes: int, *, hold_ms: float = 0.0) -> pb.ModelInferRequest:
    """``nbytes`` of zeros for the tier's probe endpoint, held ``hold_ms`` there if > 0."""
    request = pb.ModelInferRequest(model_name=PROBE_MODEL)
    request.inputs.add(name="probe", datatype="UINT8", shape=[nbytes])
    request.raw_input_contents.append(bytes(nbytes))
    if hold_ms > 0:
        set_param(request.parameters, HOLD_PARAM, float(hold_ms))
    return request


def typed_error(
    code: grpc.StatusCode | None, metadata: Mapping[str, str], details: str, tier: str
) -> TiermlError:
    """The typed error for a failed call to ``tier``: by status and trailing metadata."""
    name = code.name if code is not None else "error"
    down_tier = str(metadata.get(TIER_KEY, tier))
    tierml_code = metadata.get(CODE_KEY)
    if tierml_code == TierUnavailableError.code or code in DOWN_CODES:
        return TierUnavailableError(
            down_tier,
            f"Tier '{down_tier}' is unavailable ({name}): {details}",
            hint="The client falls back to a plan without it; check the tier process.",
        )
    if tierml_code == InputDataError.code or code is grpc.StatusCode.INVALID_ARGUMENT:
        return InputDataError(f"Tier '{tier}' rejected the request: {details}")
    return RemoteError(f"Tier '{tier}' failed ({name}): {details}")


class GrpcTransport:
    """A tier over OIP v2 gRPC: one channel, tritonclient's generated stub."""

    def __init__(self, tier: str, address: str) -> None:
        self.tier, self.address = tier, address
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    def infer(self, request: pb.ModelInferRequest, *, timeout_s: float) -> pb.ModelInferResponse:
        try:
            response: pb.ModelInferResponse = self.stub.ModelInfer(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        return response

    def live(self, *, timeout_s: float) -> bool:
        try:
            return bool(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=timeout_s).live)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def ready(self, *, timeout_s: float) -> bool:
        try:
            return bool(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=timeout_s).ready)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        self._channel.close()

    def _error(self, exc: grpc.RpcError) -> TiermlError:
        # A channel-level failure (connection refused …) carries a code but no metadata.
        code = exc.code() if isinstance(exc, grpc.Call) else None
        meta = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        pairs = {str(k): v if isinstance(v, str) else repr(v) for k, v in meta or ()}
        return typed_error(code, pairs, str(details), self.tier)


def grpc_connect(tier: str, address: str) -> Transport:
    return GrpcTransport(tier, address)
