"""One hop of a plan: encode what crosses, wait the emulated link, call the next tier.

Used by the device client and by every tier server that forwards, so a hop behaves the
same wherever it starts. Errors come back as gRPC status codes plus trailing metadata
(``tierml-code``, ``tierml-tier``); callers match on those, never on message text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tierml.core.errors import InputDataError, RemoteError, TiermlError, TierUnavailableError
from tierml.runtime.bundle import StageSpec
from tierml.runtime.cut_noise import clip_and_noise
from tierml.runtime.link_shaping import ShapedLink
from tierml.runtime.wire import add_tensor, get_json_param, read_tensors

Array = np.ndarray[Any, Any]
HOPS_PARAM = "tierml.hops"
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


@dataclass
class HopResult:
    outputs: dict[str, Array]
    hops: list[dict[str, Any]]  # per tier downstream, as each reported
    bytes_up: int
    bytes_down: int
    wire_ms: float  # emulated link time, both ways
    call_ms: float  # the whole call, wire included
    noise_ms: float = 0.0
    encode_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def stub_for(address: str) -> pb_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return pb_grpc.GRPCInferenceServiceStub(channel)


def call_stage(
    stub: pb_grpc.GRPCInferenceServiceStub,
    stage: StageSpec,
    env: Mapping[str, Array],
    links: Sequence[ShapedLink],
    *,
    timeout_s: float,
    request_id: str = "",
    rng: np.random.Generator | None = None,
) -> HopResult:
    inbound = stage.inbound
    if inbound is None:
        raise ValueError(f"stage {stage.model} runs on the first tier; it is not called")
    start = time.perf_counter()
    request = pb.ModelInferRequest(model_name=stage.model, id=request_id)
    noise_ms = 0.0
    bytes_up = 0
    for name in inbound.tensors:
        x = env[name]
        if inbound.noise is not None:
            t0 = time.perf_counter()
            x = clip_and_noise(x, inbound.noise, rng or np.random.default_rng(inbound.noise.seed))
            noise_ms += (time.perf_counter() - t0) * 1e3
        bytes_up += add_tensor(request, name, x, inbound.codec).nbytes
    encode_ms = (time.perf_counter() - start) * 1e3 - noise_ms
    wire = sum(link.send(bytes_up, up=True) for link in links)
    try:
        response = stub.ModelInfer(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise _translate(exc, stage.tier) from exc
    bytes_down = sum(len(c) for c in response.raw_output_contents)
    wire += sum(link.send(bytes_down, up=False) for link in reversed(links))
    outputs, _ = read_tensors(response.outputs, response.raw_output_contents)
    hops = get_json_param(response.parameters, HOPS_PARAM) or []
    return HopResult(
        outputs=outputs,
        hops=list(hops),
        bytes_up=bytes_up,
        bytes_down=bytes_down,
        wire_ms=wire * 1e3,
        call_ms=(time.perf_counter() - start) * 1e3,
        noise_ms=noise_ms,
        encode_ms=encode_ms,
    )


def _translate(exc: grpc.RpcError, tier: str) -> TiermlError:
    code = exc.code() if hasattr(exc, "code") else None
    meta = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    details = exc.details() if hasattr(exc, "details") else str(exc)
    down_tier = str(meta.get("tierml-tier", tier))
    if meta.get("tierml-code") == TierUnavailableError.code or code in DOWN_CODES:
        return TierUnavailableError(
            down_tier,
            f"Tier '{down_tier}' is unavailable ({code.name if code else 'error'}): {details}",
            hint="The client falls back to a plan without it; check the tier process.",
        )
    if meta.get("tierml-code") == InputDataError.code or code is grpc.StatusCode.INVALID_ARGUMENT:
        return InputDataError(f"Tier '{tier}' rejected the request: {details}")
    return RemoteError(f"Tier '{tier}' failed ({code.name if code else 'error'}): {details}")


def hops_json(hops: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(hops), separators=(",", ":"))
