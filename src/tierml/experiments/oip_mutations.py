"""Structure-aware mutations of OIP v2 requests, for fuzzing a tier server.

A *seed* is a valid ModelInfer for one partition a tier hosts, with the inputs the stages
before it compute for a random image, encoded as the client would (the plan's codec). A
*case* is one seed mutated by one kind (or a few stacked), serialised, plus the gRPC
method it goes to — or bytes that are no message at all, for a generic call or for the
port's raw TCP. Case ``i`` is a pure function of the run's seed and ``i``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from tierml.runtime.bundle import Bundle
from tierml.runtime.stage_exec import StageRunner
from tierml.runtime.transport import HOLD_PARAM, PROBE_MODEL
from tierml.runtime.wire import add_tensor, set_param

Array = np.ndarray[Any, Any]
RAW_TCP = "raw-tcp"  # the case's bytes go to the port as they are, no gRPC
OVERSIZED_BYTES = 65 << 20  # past the servers' 64 MB message limit
DATATYPES: tuple[str, ...] = (
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
)
DATATYPES += ("UINT64", "FP16", "FP32", "FP64", "BF16", "BYTES", "", "fp32", "FLOAT")
CODECS = ("fp32", "fp16", "int8", "int8c", "int8+zstd", "fp16+lz4", "int8c+zstd", "zstd", "")
CODEC_KEYS = ("scale", "zero_point", "raw_nbytes", "axis", "codec", "nonsense")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass(frozen=True)
class Seed:
    tier: str
    request: pb.ModelInferRequest  # valid: the tier answers it


@dataclass(frozen=True)
class Case:
    index: int
    kind: str
    tier: str
    method: str  # a gRPC method path, or RAW_TCP
    payload: bytes
    detail: str


def build_seeds(bundle: Bundle, root: Path, *, seed: int = 0) -> list[Seed]:
    """A valid request for every partition a remote tier is called for, and the probe."""
    rng = np.random.default_rng(seed)
    runners: dict[str, StageRunner] = {}
    seeds: dict[str, Seed] = {}
    for plan in bundle.plans:
        x = {t.name: rng.standard_normal(t.shape).astype(t.dtype) for t in bundle.inputs}
        env: dict[str, Array] = dict(x)
        for stage in plan.stages:
            if stage.inbound is not None and stage.model not in seeds:
                request = pb.ModelInferRequest(model_name=stage.model, id=stage.model)
                for name in stage.inbound.tensors:
                    add_tensor(request, name, env[name], stage.inbound.codec)
                seeds[stage.model] = Seed(stage.tier, request)
            if stage.model not in runners:
                runners[stage.model] = StageRunner(
                    stage, str(root / stage.file), threads=1, slowdown=1.0
                )
            env.update(runners[stage.model].run(env).outputs)
    out = sorted(seeds.values(), key=lambda s: s.request.model_name)
    for tier in sorted({s.tier for s in out}):
        probe = pb.ModelInferRequest(model_name=PROBE_MODEL)
        probe.inputs.add(name="probe", datatype="UINT8", shape=[64])
        probe.raw_input_contents.append(bytes(64))
        out.append(Seed(tier, probe))
    return out


# -- mutations of a request message (in place); each returns what it did ------------------
Mutation = Callable[[random.Random, pb.ModelInferRequest], str]


def _pick(r: random.Random, request: pb.ModelInferRequest) -> int:
    return r.randrange(len(request.inputs)) if len(request.inputs) else -1


def _name(r: random.Random) -> str:
    long = "a" * r.choice([64, 4096, 100_000])
    odd = "".join(chr(r.randrange(1, 0x2FF)) for _ in range(r.randrange(1, 40)))
    unicode, path = "\u00e9\u4e2d\U0001f600", "/layer1/../etc/passwd"
    return r.choice(["", "x", "input", "probe", unicode, long, path, odd])


def drop_input(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "nothing to drop"
    q.inputs.pop(i)
    if r.random() < 0.8 and i < len(q.raw_input_contents):
        q.raw_input_contents.pop(i)
        return f"input {i} and its contents"
    return f"input {i} only"


def duplicate_input(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "nothing to duplicate"
    q.inputs.append(q.inputs[i])
    if i < len(q.raw_input_contents) and r.random() < 0.8:
        q.raw_input_contents.append(q.raw_input_contents[i])
    return f"input {i}"


def rename_input(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "nothing to rename"
    q.inputs[i].name = _name(r)
    return f"input {i} → {q.inputs[i].name[:20]!r}"


def datatype(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "no input"
    q.inputs[i].datatype = r.choice(DATATYPES)
    return f"input {i} as {q.inputs[i].datatype!r}"


def shape(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "no input"
    dims = list(q.inputs[i].shape)
    how = r.choice(["dim", "rank+", "rank-", "negative", "huge", "zero", "empty", "flat"])
    if how == "dim" and dims:
        k = r.randrange(len(dims))
        dims[k] = max(0, dims[k] + r.choice([-1, 1, 2, 7]))
    elif how == "rank+":
        dims.insert(r.randrange(len(dims) + 1), r.choice([1, 2]))
    elif how == "rank-" and dims:
        dims.pop(r.randrange(len(dims)))
    elif how == "negative" and dims:
        dims[r.randrange(len(dims))] = r.choice([-1, -2, -(1 << 62)])
    elif how == "huge" and dims:
        dims[r.randrange(len(dims))] = r.choice([1 << 31, 1 << 40, (1 << 63) - 1])
    elif how == "zero" and dims:
        dims[r.randrange(len(dims))] = 0
    elif how == "empty":
        dims = []
    elif how == "flat":
        dims = [int(np.prod(dims))] if dims else [1]
    del q.inputs[i].shape[:]
    q.inputs[i].shape.extend(dims)
    return f"input {i} {how} → {dims[:6]}"


def contents(r: random.Random, q: pb.ModelInferRequest) -> str:
    if not len(q.raw_input_contents):
        q.raw_input_contents.append(r.randbytes(r.randrange(64)))
        return "contents where there were none"
    i = r.randrange(len(q.raw_input_contents))
    raw = q.raw_input_contents[i]
    how = r.choice(["truncate", "extend", "garbage", "empty", "nan", "one-byte"])
    if how == "truncate":
        raw = raw[: r.randrange(len(raw) + 1)]
    elif how == "extend":
        raw = raw + r.randbytes(r.choice([1, 3, 4, 1024]))
    elif how == "garbage":
        raw = r.randbytes(len(raw))
    elif how == "empty":
        raw = b""
    elif how == "nan":
        raw = struct.pack("<f", float("nan")) * (len(raw) // 4) + raw[4 * (len(raw) // 4) :]
    else:
        raw = raw[:1]
    q.raw_input_contents[i] = raw
    return f"contents {i} {how} ({len(raw)} B)"


def extra_contents(r: random.Random, q: pb.ModelInferRequest) -> str:
    n = r.choice([1, 1, 2, 50])
    for _ in range(n):
        q.raw_input_contents.append(r.randbytes(r.randrange(256)))
    return f"{n} extra raw contents"


def missing_contents(r: random.Random, q: pb.ModelInferRequest) -> str:
    if not len(q.raw_input_contents):
        return "no contents to remove"
    del q.raw_input_contents[r.randrange(len(q.raw_input_contents)) :]
    return f"{len(q.raw_input_contents)} of {len(q.inputs)} contents left"


def typed_contents(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "no input"
    q.inputs[i].contents.fp32_contents.extend(r.random() for _ in range(r.randrange(1, 9)))
    if r.random() < 0.5:
        del q.raw_input_contents[:]
        return f"input {i} typed, raw contents dropped"
    return f"input {i} typed beside its raw contents"


def model_name(r: random.Random, q: pb.ModelInferRequest) -> str:
    q.model_name = r.choice([_name(r), q.model_name + ".s9", "p999.s1", "tierml.hops", ""])
    if r.random() < 0.3:
        q.model_version = r.choice(["2", "-1", "latest", "\x00"])
    return f"model {q.model_name[:30]!r} version {q.model_version!r}"


ParamValue = str | int | float | bool
GARBAGE_VALUES: tuple[ParamValue, ...] = (
    "", "fp32", "int8+zstd", "zstd+int8", "int8c", "lz4", "\u2603", "x" * 10_000,
    0, -1, 1 << 62, 3, float("nan"), float("inf"), -0.0, 1e308, True, False,
)  # fmt: skip


def _garbage_value(r: random.Random) -> ParamValue:
    return r.choice(GARBAGE_VALUES)


def codec_params(r: random.Random, q: pb.ModelInferRequest) -> str:
    i = _pick(r, q)
    if i < 0:
        return "no input"
    params = q.inputs[i].parameters
    how = r.choice(["codec", "set", "drop", "clear"])
    if how == "codec":
        value: str | int | float | bool = r.choice([*CODECS, _garbage_value(r)])
        set_param(params, "tierml.codec", value)
    elif how == "set":
        key = "tierml." + r.choice(CODEC_KEYS)
        value = _garbage_value(r)
        set_param(params, key, value)
    elif how == "drop" and len(params):
        key = r.choice(sorted(params))
        del params[key]
        value = key
    else:
        params.clear()
        value = "all"
    return f"input {i} codec params {how} {str(value)[:30]!r}"


def request_params(r: random.Random, q: pb.ModelInferRequest) -> str:
    key = r.choice(["tierml.hops", HOLD_PARAM, "tierml.codec", "tierml." + _name(r)[:40]])
    value = r.choice(
        [
            _garbage_value(r),
            "[]",
            "[{}]",
            '[{"tier": "edge"}]',
            "{" * 5000,
            '[{"tier": "edge", "model": "m", "compute_ms": 1e999}]',
        ]
    )
    set_param(q.parameters, key, value)
    if r.random() < 0.3:
        p = q.parameters[key]
        p.Clear()  # a parameter with no value at all
    return f"request param {key[:30]!r} = {str(value)[:30]!r}"


def parameter_flood(r: random.Random, q: pb.ModelInferRequest) -> str:
    n = r.choice([1_000, 10_000, 50_000])
    target = q.parameters if r.random() < 0.5 or not len(q.inputs) else q.inputs[0].parameters
    for k in range(n):
        target[f"tierml.p{k}" if k % 2 else f"k{k}"].int64_param = k
    return f"{n} parameters"


def probe(r: random.Random, q: pb.ModelInferRequest) -> str:
    q.model_name = PROBE_MODEL
    if r.random() < 0.5:
        set_param(q.parameters, HOLD_PARAM, r.choice([-1.0, 0.0, 1.0, 1e9, float("nan"), 5]))
    return "sent to the probe"


def requested_outputs(r: random.Random, q: pb.ModelInferRequest) -> str:
    for _ in range(r.randrange(1, 4)):
        q.outputs.add(name=_name(r)[:100])
    return f"{len(q.outputs)} requested outputs"


MUTATIONS: dict[str, Mutation] = {
    "drop-input": drop_input,
    "duplicate-input": duplicate_input,
    "rename-input": rename_input,
    "datatype": datatype,
    "shape": shape,
    "contents": contents,
    "extra-contents": extra_contents,
    "missing-contents": missing_contents,
    "typed-contents": typed_contents,
    "model-name": model_name,
    "codec-params": codec_params,
    "request-params": request_params,
    "parameter-flood": parameter_flood,
    "probe": probe,
    "requested-outputs": requested_outputs,
}
# Cases that are not one mutation of a message, and how often each is drawn (the
# mutations share the rest evenly).
OTHER_KINDS = {
    "valid": 0.02,
    "stacked": 0.12,
    "bit-flips": 0.06,
    "garbage-method": 0.04,
    "unknown-method": 0.02,
    RAW_TCP: 0.02,
    "oversized": 0.002,
}
KINDS = (*MUTATIONS, *OTHER_KINDS)
SERVICE_METHODS: tuple[str, ...] = ("ServerLive", "ServerReady", "ServerMetadata", "ModelReady")
SERVICE_METHODS += ("ModelMetadata", "ModelConfig", "ModelInfer", "RepositoryIndex")
INFER = "/inference.GRPCInferenceService/ModelInfer"


def make_case(index: int, run_seed: int, seeds: list[Seed]) -> Case:
    """Case ``index`` of the run seeded ``run_seed``."""
    r = random.Random(run_seed * 1_000_003 + index)
    seed = r.choice(seeds)
    q = pb.ModelInferRequest()
    q.CopyFrom(seed.request)
    roll, kind = r.random(), ""
    for other, weight in OTHER_KINDS.items():
        roll -= weight
        if roll < 0:
            kind = other
            break
    if not kind:
        kind = r.choice(list(MUTATIONS))
    method, detail = INFER, ""
    if kind in MUTATIONS:
        detail = MUTATIONS[kind](r, q)
    elif kind == "stacked":
        names = r.sample(list(MUTATIONS), r.choice([2, 3]))
        detail = "; ".join(f"{n}: {MUTATIONS[n](r, q)}" for n in names)
    elif kind == "oversized":
        q.raw_input_contents.append(bytes(OVERSIZED_BYTES))
        detail = f"{OVERSIZED_BYTES >> 20} MB of extra contents"
    payload = q.SerializeToString()
    if kind == "bit-flips":
        data = bytearray(payload)
        for _ in range(r.choice([1, 2, 8, 64])):
            data[r.randrange(len(data))] ^= 1 << r.randrange(8)
        cut = len(data) if r.random() < 0.7 else r.randrange(len(data) + 1)
        payload, detail = bytes(data[:cut]), f"flipped bits, {cut} of {len(data)} B kept"
    elif kind == "garbage-method":
        name = r.choice(SERVICE_METHODS)
        method = f"/inference.GRPCInferenceService/{name}"
        payload = r.randbytes(r.choice([0, 1, 7, 100, 5000]))
        detail = f"{len(payload)} random bytes to {name}"
    elif kind == "unknown-method":
        method = r.choice(
            ["/inference.GRPCInferenceService/Nope", "/x.Y/Z", "/", "/a/" + "b" * 300]
        )
        payload = r.randbytes(r.randrange(100))
        detail = f"{len(payload)} B to {method[:40]}"
    elif kind == RAW_TCP:
        method = RAW_TCP
        head = H2_PREFACE if r.random() < 0.5 else b""
        payload = head + r.randbytes(r.choice([0, 9, 100, 10_000]))
        detail = f"{len(payload)} B over TCP{' after the HTTP/2 preface' if head else ''}"
    elif kind == "valid":
        detail = "unmutated"
    return Case(index, kind, seed.tier, method, payload, detail)
