"""A tier process: hosts a bundle's partitions for one tier and speaks OIP v2 over gRPC.

ServerLive/ServerReady/ModelReady/ModelMetadata/ModelInfer follow the Open Inference
Protocol (KServe v2; the message definitions are tritonclient's generated stubs). A
ModelInfer on a partition decodes its inputs (codec in the tensor parameters), runs the
partition, and — unless an exit is confident or it is the plan's last stage — forwards
what the next stage needs over the emulated link, then returns the graph outputs it and
the tiers behind it produced, with a per-tier record in the ``tierml.hops`` parameter.
With ``max_batch`` > 1, requests for one partition that queue together (or arrive within
``batch_window_ms`` of the first) run as one batch (``tierml.runtime.batching``);
ModelConfig says which partitions batch.

Run as ``python -m tierml.runtime.tier_server CONFIG.json``; it writes the bound port to
the config's ``ready_file`` once serving, and exits when its parent process is gone.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
import onnxruntime as ort
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tierml.core.errors import InputDataError, RemoteError, TiermlError, TierUnavailableError
from tierml.runtime.batching import (
    DEFAULT_WINDOW_MS,
    BatchSlice,
    check_batching,
    make_batchers,
    run_batched_on_tier,
)
from tierml.runtime.bundle import Bundle, PlanSpec, load_bundle
from tierml.runtime.forward import HopResult, call_stage
from tierml.runtime.grpc_service import add_tier_service
from tierml.runtime.hop_record import HOPS_PARAM, HopRecord, hops_to_json
from tierml.runtime.link_shaping import ShapedLink
from tierml.runtime.request_check import DeclaredInput, check_request, declared_inputs
from tierml.runtime.stage_exec import StageRunner, run_on_tier
from tierml.runtime.transport import (
    CODE_KEY,
    HOLD_PARAM,
    MAX_HOLD_MS,
    MAX_MESSAGE_BYTES,
    PROBE_MODEL,
    TIER_KEY,
    Connector,
    Transport,
    grpc_connect,
)
from tierml.runtime.wire import add_tensor, get_param, oip_datatype, read_tensors, set_param

# The longest refusal message sent: it travels in the trailers, which a gRPC client drops
# whole (code included) past 16 KB.
MAX_DETAILS = 2_000


@dataclass(frozen=True)
class TierConfig:
    bundle: str
    tier: str
    peers: dict[str, str]  # tier → "127.0.0.1:port"
    ready_file: str = ""
    port: int = 0
    threads: int = 1
    cpus: tuple[int, ...] = ()
    slowdown: float | None = None  # None: the bundle's
    seed: int = 0
    workers: int = 8
    timeout_s: float = 5.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_batch: int = 1  # rows one partition run may batch; 1: every request alone
    batch_window_ms: float = DEFAULT_WINDOW_MS  # how long a batch's first request waits

    def __post_init__(self) -> None:
        check_batching(self.max_batch, self.batch_window_ms)

    @classmethod
    def load(cls, path: str) -> TierConfig:
        d = json.loads(Path(path).read_text())
        d["cpus"] = tuple(d.get("cpus", ()))
        return cls(**d)


class TierService(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """One tier's partitions behind the OIP v2 service methods. ``connect``: how it reaches
    the tiers it forwards to (gRPC, or in process); ``log``: where batchers report."""

    def __init__(
        self,
        config: TierConfig,
        *,
        connect: Connector = grpc_connect,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.connect = connect
        self.bundle: Bundle = load_bundle(config.bundle)
        spec = self.bundle.tier(config.tier)
        slowdown = spec.slowdown if config.slowdown is None else config.slowdown
        root = Path(config.bundle)
        self.runners: dict[str, StageRunner] = {}
        sessions: dict[str, ort.InferenceSession] = {}
        self.place: dict[str, tuple[PlanSpec, int]] = {}
        for plan in self.bundle.plans:
            for k, stage in enumerate(plan.stages):
                # Stages it is called for, and those continuing on this tier after them.
                if stage.tier == config.tier and (stage.inbound is not None or k > 0):
                    self.runners[stage.model] = StageRunner(
                        stage,
                        str(root / stage.file),
                        threads=config.threads,
                        slowdown=slowdown,
                        sessions=sessions,
                    )
                    self.place[stage.model] = (plan, k)
        self.declared: dict[str, tuple[DeclaredInput, ...]] = {
            name: declared_inputs(runner.spec, runner.schema)
            for name, runner in self.runners.items()
        }
        self.links = {
            name: ShapedLink(shape, seed=config.seed + i)
            for i, (name, shape) in enumerate(sorted(self.bundle.links.items()))
        }
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self.batchers, self.unbatched = make_batchers(
            self.runners, max_batch=config.max_batch, window_ms=config.batch_window_ms, log=log
        )

    def close(self) -> None:
        """Stop the batchers and close the connections onwards."""
        for batcher in self.batchers.values():
            batcher.close()
        with self._lock:
            for transport in self._transports.values():
                transport.close()
            self._transports.clear()

    # -- health and metadata ------------------------------------------------------------
    def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=request.name in self.runners)

    def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=f"tierml:{self.config.tier}", version="1")

    def ModelMetadata(self, request: Any, context: Any) -> pb.ModelMetadataResponse:
        runner = self.runners.get(request.name)
        if runner is None:
            self.refuse(
                context, grpc.StatusCode.NOT_FOUND, RemoteError(self._unknown(request.name))
            )
        response = pb.ModelMetadataResponse(
            name=request.name, versions=["1"], platform="onnxruntime_onnx"
        )
        for i in runner.session.get_inputs():
            response.inputs.add(
                name=i.name,
                datatype=oip_datatype(np.dtype(runner.schema[i.name][0])),
                shape=[d if isinstance(d, int) else -1 for d in i.shape],
            )
        for o in runner.session.get_outputs():
            dtype = _ORT_OUT.get(o.type, "FP32")
            response.outputs.add(
                name=o.name,
                datatype=dtype,
                shape=[d if isinstance(d, int) else -1 for d in o.shape],
            )
        return response

    def ModelConfig(self, request: Any, context: Any) -> pb.ModelConfigResponse:
        """Triton's view of batching: ``max_batch_size`` 0 for a partition run alone."""
        if request.name not in self.runners:
            self.refuse(
                context, grpc.StatusCode.NOT_FOUND, RemoteError(self._unknown(request.name))
            )
        config = mc.ModelConfig(name=request.name, platform="onnxruntime_onnx")
        batcher = self.batchers.get(request.name)
        if batcher is not None and batcher.enabled:
            config.max_batch_size = batcher.max_batch
            config.dynamic_batching.max_queue_delay_microseconds = round(batcher.window_s * 1e6)
        elif request.name in self.unbatched:
            config.parameters["tierml.unbatched"].string_value = self.unbatched[request.name]
        return pb.ModelConfigResponse(config=config)

    # -- inference ------------------------------------------------------------------------
    def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        start = time.perf_counter()
        if request.model_name == PROBE_MODEL:  # a bandwidth probe: bytes in, nothing out
            hold = get_param(request.parameters, HOLD_PARAM)
            if isinstance(hold, float) and 0 < hold <= MAX_HOLD_MS:
                # Busy, as a partition's run keeps the core: a sleep would let the core idle
                # and wake late, which a computing tier does not.
                end = start + hold / 1e3
                while time.perf_counter() < end:
                    pass
            return pb.ModelInferResponse(model_name=PROBE_MODEL, id=request.id)
        runner = self.runners.get(request.model_name)
        if runner is None:
            self.refuse(
                context, grpc.StatusCode.NOT_FOUND, RemoteError(self._unknown(request.model_name))
            )
        plan, k = self.place[request.model_name]
        try:
            check_request(request.model_name, self.declared[request.model_name], request)
            env, wire_in = read_tensors(request.inputs, request.raw_input_contents)
            decode_ms = (time.perf_counter() - start) * 1e3
            batcher = self.batchers.get(request.model_name)
            batch: BatchSlice | None = None
            if batcher is None:
                local = run_on_tier(self.runners, plan.stages, k, env)
            else:
                local, batch = run_batched_on_tier(batcher, self.runners, plan.stages, k, env)
            response = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
            for name in sorted(local.returned):
                add_tensor(response, name, local.returned[name])
            onward: HopResult | None = None
            if local.exit is None and local.next_stage < len(plan.stages):
                nxt = plan.stages[local.next_stage]
                links = [self.links[n] for n in nxt.inbound.links] if nxt.inbound else []
                onward = call_stage(
                    self._transport(nxt.tier),
                    nxt,
                    env,
                    links,
                    timeout_s=self.config.timeout_s,
                    request_id=request.id,
                )
                for name, value in onward.outputs.items():
                    if name not in local.returned:
                        add_tensor(response, name, value)
            record = HopRecord(
                tier=self.config.tier,
                model=",".join(local.models),
                decode_ms=decode_ms,
                compute_ms=local.compute_ms,
                emulated_ms=local.emulated_ms,
                bytes_in=sum(w.nbytes for w in wire_in),
                exit=local.exit.name if local.exit else None,
                batch=batch.requests if batch else 1,  # requests its partition ran with
                batch_rows=batch.rows if batch else None,
                queue_ms=batch.queue_ms if batch else None,
                wire_ms=onward.wire_ms if onward else None,
                call_ms=onward.call_ms if onward else None,
                bytes_out=onward.bytes_up if onward else None,
                encode_ms=onward.encode_ms if onward else None,
                total_ms=(time.perf_counter() - start) * 1e3,
            )
            hops = [record, *(onward.hops if onward else ())]
            set_param(response.parameters, HOPS_PARAM, hops_to_json(hops))
            return response
        except TierUnavailableError as exc:
            self.refuse(context, grpc.StatusCode.UNAVAILABLE, exc, tier=exc.tier)
        except InputDataError as exc:
            self.refuse(context, grpc.StatusCode.INVALID_ARGUMENT, exc)
        except TiermlError as exc:
            self.refuse(context, grpc.StatusCode.INTERNAL, exc)

    # -- helpers --------------------------------------------------------------------------
    def _transport(self, tier: str) -> Transport:
        with self._lock:
            if tier not in self._transports:
                address = self.config.peers.get(tier)
                if address is None:
                    raise TierUnavailableError(tier, f"Tier '{tier}' has no known address.")
                self._transports[tier] = self.connect(tier, address)
            return self._transports[tier]

    def _unknown(self, name: str) -> str:
        shown = name if len(name) <= 60 else name[:57] + "..."
        hosted = sorted(self.runners)
        listed = ", ".join(hosted[:20]) + (
            f" and {len(hosted) - 20} more" if len(hosted) > 20 else ""
        )
        return f"No partition {shown!r} on tier '{self.config.tier}'; hosted: {listed}."

    def refuse(
        self, context: Any, status: grpc.StatusCode, exc: TiermlError, tier: str = ""
    ) -> NoReturn:
        """Fail the call with a status and the error's code and tier as trailing metadata."""
        context.set_trailing_metadata(((CODE_KEY, exc.code), (TIER_KEY, tier or self.config.tier)))
        message = exc.one_line()
        if len(message) > MAX_DETAILS:  # a client drops trailers past 16 KB: the code with them
            message = message[: MAX_DETAILS - 1] + "…"
        context.abort(status, message)
        raise RuntimeError("grpc abort returned")  # abort raises; this is unreachable


_ORT_OUT = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(int8)": "INT8",
    "tensor(double)": "FP64",
}


def serve(config: TierConfig) -> None:
    """Serve until SIGTERM or until the parent process is gone."""
    if config.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(config.cpus))
    service = TierService(config)
    # A full batch holds max_batch handler threads while it runs; as many again let the
    # next batch form meanwhile.
    workers = config.workers if config.max_batch == 1 else max(config.workers, 2 * config.max_batch)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.max_receive_message_length", config.max_message_bytes),
        ],
    )
    add_tier_service(server, service)
    port = server.add_insecure_port(f"127.0.0.1:{config.port}")
    server.start()
    if config.ready_file:
        tmp = config.ready_file + ".tmp"
        Path(tmp).write_text(json.dumps({"port": port, "pid": os.getpid()}))
        os.replace(tmp, config.ready_file)
    parent = os.getppid()
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        if os.getppid() != parent:  # orphaned: the deployment is gone
            break
    server.stop(grace=1.0).wait()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tierml.runtime.tier_server CONFIG.json", file=sys.stderr)
        return 2
    try:
        serve(TierConfig.load(args[0]))
    except TiermlError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
