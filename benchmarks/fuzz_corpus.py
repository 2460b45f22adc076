"""The model fuzzer's corpus: real seed models, and mutants drawn from them reproducibly.

Seeds are the onnx wheel's real topologies (``light/``) and its operator and model test
cases, and a few small zoo exports. A mutant is one seed with one to three structural
edits (``model_mutations``: damage; ``model_rewrites``: changes that keep the model valid)
or with its serialized bytes truncated, bit-flipped or overwritten. Every choice comes
from the ``random.Random`` passed in, so a case is a pure function of its seed string.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from model_mutations import MUTATIONS, Edit
from model_rewrites import REWRITES

WHEEL_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
# Small zoo exports: (name, exporter, size option); weights stay a few MB.
ZOO_SEEDS = (
    ("squeezenet", "legacy", {"image_size": 32}),
    ("squeezenet", "dynamo", {"image_size": 32}),
    ("speech_lstm", "legacy", {"seq_len": 8}),
    ("inception", "legacy", {"image_size": 64}),
)
BYTE_KINDS = ("truncate", "bit_flip", "garbage")
EDITS: dict[str, Callable[[Edit], str | None]] = {**MUTATIONS, **REWRITES}
KINDS = ("original", *EDITS, *BYTE_KINDS)
BYTE_SHARE = 1 / 6  # of mutants; the rest are structural
REWRITE_SHARE = 0.25  # of structural edits


@dataclass(frozen=True)
class Seed:
    name: str
    family: str  # "real" (wheel topologies), "node" (wheel operator tests) or "zoo"
    data: bytes


@dataclass
class Mutant:
    """A mutated model as the file bytes to write, plus files to write beside it."""

    seed: str
    kinds: tuple[str, ...]
    detail: str
    data: bytes
    sidecars: dict[str, bytes] = field(default_factory=dict)


def wheel_seeds() -> list[Seed]:
    """The onnx wheel's real topologies (light/) and its operator and model test cases.

    (Wheels that ship ``node/*/model.onnx`` contribute those too; ``real/`` holds only
    download links.)
    """
    found = [Seed(p.stem, "real", p.read_bytes()) for p in sorted(WHEEL_DATA.glob("light/*.onnx"))]
    for path in sorted(WHEEL_DATA.glob("*/*/model.onnx")):
        found.append(Seed(path.parent.name, "node", path.read_bytes()))
    return found


def zoo_seeds() -> list[Seed]:
    """A few small zoo exports, cached in out/bench (exported once; needs torch)."""
    from zoo_cache import zoo_model

    found = []
    for name, exporter, size in ZOO_SEEDS:
        model = onnx.load(zoo_model(name, exporter, **size))
        fix_sequence_dims(model, next(iter(size.values())))
        found.append(Seed(f"{name}-{exporter}", "zoo", model.SerializeToString()))
    return found


def fix_sequence_dims(model: onnx.ModelProto, size: int) -> None:
    """Give the inputs' dynamic non-batch dims (a sequence length) the export's size, so
    the unmutated model analyses without shape options."""
    for value in model.graph.input:
        for d in value.type.tensor_type.shape.dim[1:]:
            if d.HasField("dim_param"):
                d.dim_value = size


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes, str]:
    """Truncate, flip bits in, or overwrite part of a serialized model."""
    kind = rng.choice(BYTE_KINDS)
    if kind == "truncate":
        at = rng.randrange(len(data) + 1)
        return kind, data[:at], f"truncated to {at} of {len(data)} bytes"
    buf = bytearray(data)
    if kind == "bit_flip":
        flips = rng.randint(1, 8)
        for _ in range(flips):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        return kind, bytes(buf), f"{flips} bits flipped"
    start = rng.randrange(len(buf))
    span = rng.randint(1, 64)
    buf[start : start + span] = rng.randbytes(span)
    return kind, bytes(buf), f"{span} bytes overwritten at {start}"


def mutate(seed: Seed, model: onnx.ModelProto, types: dict[str, int], rng: random.Random) -> Mutant:
    """One to three structural edits of ``model`` (the parsed ``seed``, whose tensors have
    element ``types``), or a byte-level mutation of the seed's file."""
    if rng.random() < BYTE_SHARE:
        kind, data, detail = mutate_bytes(seed.data, rng)
        return Mutant(seed.name, (kind,), detail, data)
    work = onnx.ModelProto()
    work.CopyFrom(model)
    edit = Edit(work, rng, types)
    kinds: list[str] = []
    details: list[str] = []
    wanted = rng.choices((1, 2, 3), weights=(8, 2, 1))[0]
    for _ in range(wanted * 4):  # an edit may not apply (no initializer, no attribute …)
        if len(kinds) == wanted:
            break
        table = REWRITES if rng.random() < REWRITE_SHARE else MUTATIONS
        name = rng.choice(sorted(table))
        detail = table[name](edit)
        if detail is not None:
            kinds.append(name)
            details.append(detail)
    if not kinds:
        kind, data, detail = mutate_bytes(seed.data, rng)
        return Mutant(seed.name, (kind,), detail, data)
    data = work.SerializeToString()
    return Mutant(seed.name, tuple(kinds), "; ".join(details), data, edit.sidecars)
