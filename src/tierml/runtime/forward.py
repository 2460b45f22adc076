"""One hop of a plan: encode what crosses, wait the emulated link, call the next tier.

Used by the device client and by every tier server that forwards, so a hop behaves the
same wherever it starts. The call goes through a Transport (gRPC, or in process), which
turns a refusal into a typed error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from tierml.core.errors import DeploymentError
from tierml.runtime.bundle import StageSpec
from tierml.runtime.cut_noise import clip_and_noise
from tierml.runtime.hop_record import HOPS_PARAM, HopRecord, hops_from_json
from tierml.runtime.link_shaping import ShapedLink
from tierml.runtime.transport import Transport
from tierml.runtime.wire import add_tensor, get_param, read_tensors

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class HopResult:
    outputs: dict[str, Array]
    hops: list[HopRecord]  # per tier downstream, as each reported
    bytes_up: int
    bytes_down: int
    wire_ms: float  # emulated link time, both ways
    call_ms: float  # the whole call, wire included
    noise_ms: float = 0.0
    encode_ms: float = 0.0


def call_stage(
    transport: Transport,
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
        raise DeploymentError(f"Stage {stage.model} runs on the first tier; it is not called.")
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
    response = transport.infer(request, timeout_s=timeout_s)
    bytes_down = sum(len(c) for c in response.raw_output_contents)
    wire += sum(link.send(bytes_down, up=False) for link in reversed(links))
    outputs, _ = read_tensors(response.outputs, response.raw_output_contents)
    reported = get_param(response.parameters, HOPS_PARAM)
    return HopResult(
        outputs=outputs,
        hops=[] if reported is None else hops_from_json(reported),
        bytes_up=bytes_up,
        bytes_down=bytes_down,
        wire_ms=wire * 1e3,
        call_ms=(time.perf_counter() - start) * 1e3,
        noise_ms=noise_ms,
        encode_ms=encode_ms,
    )
