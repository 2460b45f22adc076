"""What one tier did for a request: one record per computing tier, as the response reports it.

A tier server builds its record once it has run (and forwarded), and sends the records of
itself and the tiers behind it in the ``tierml.hops`` response parameter, as JSON; the
device client adds its own. This module is the one place that JSON is written and read:
a peer's malformed or unknown record is an ``InputDataError``, never a ``KeyError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from tierml.core.errors import InputDataError

HOPS_PARAM = "tierml.hops"
MAX_HOPS = 64  # more records than any plan has tiers: a peer's answer is not trusted
_TEXT = 256  # longest tier, model or exit name read from a peer


@dataclass(frozen=True)
class HopRecord:
    """One tier's part of a request. Fields left None were not measured there and are
    left out of ``to_dict`` (the device's own record has no decode, bytes in or batch).

    Field order is the JSON key order of ``tierml infer --format json``.
    """

    tier: str
    model: str  # partitions run there, comma-separated
    decode_ms: float | None = None  # reading the request's tensors
    compute_ms: float = 0.0  # ONNX Runtime, measured on this host
    emulated_ms: float = 0.0  # waited to emulate a slower tier
    bytes_in: int | None = None  # payload bytes received
    exit: str | None = None  # the exit that took the request here
    batch: int | None = None  # requests its partition ran with (1: alone)
    batch_rows: int | None = None  # rows of that run (batching tiers only)
    queue_ms: float | None = None  # waiting for the batch (batching tiers only)
    wire_ms: float | None = None  # emulated link time of the hop onwards, both ways
    call_ms: float | None = None  # the call onwards, wire and the tiers behind included
    bytes_out: int | None = None  # payload bytes sent onwards
    encode_ms: float | None = None  # encoding what was sent onwards
    total_ms: float | None = None  # from receiving the request to answering it

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None or f.name == "exit"
        }

    @classmethod
    def from_dict(cls, d: object) -> HopRecord:
        """A record as a peer sent it; anything unexpected → InputDataError."""
        if not isinstance(d, dict):
            raise InputDataError(f"A hop record is a JSON object; got {_short(d)}.")
        unknown = sorted(set(d) - _KINDS)
        if unknown:
            raise InputDataError(f"A hop record has unknown fields {unknown[:5]}.")
        values: dict[str, Any] = {}
        for name, value in d.items():
            values[name] = _checked(name, value)
        for name in ("tier", "model"):
            if values.get(name) is None:
                raise InputDataError(f"A hop record has no {name!r}.")
        return cls(**values)


def hops_to_json(hops: Sequence[HopRecord]) -> str:
    return json.dumps([h.to_dict() for h in hops], separators=(",", ":"), allow_nan=False)


def hops_from_json(text: object) -> list[HopRecord]:
    """The records of a ``tierml.hops`` parameter's value (a JSON list of objects)."""
    if not isinstance(text, str):
        raise InputDataError(f"Parameter {HOPS_PARAM!r} is not a string; got {_short(text)}.")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputDataError(f"Parameter {HOPS_PARAM!r} is not valid JSON: {exc}.") from exc
    if not isinstance(data, list):
        raise InputDataError(f"Parameter {HOPS_PARAM!r} is not a JSON list; got {_short(data)}.")
    if len(data) > MAX_HOPS:
        raise InputDataError(
            f"Parameter {HOPS_PARAM!r} has {len(data)} records; at most {MAX_HOPS}."
        )
    return [HopRecord.from_dict(d) for d in data]


# What each field may hold: its kind, and whether it may be absent (None).
_KINDS = {f.name for f in fields(HopRecord)}
_STRINGS = {"tier", "model", "exit"}
_INTEGERS = {"bytes_in", "bytes_out", "batch", "batch_rows"}


def _checked(name: str, value: object) -> Any:
    if value is None:
        return None
    if name in _STRINGS:
        if not isinstance(value, str) or len(value) > _TEXT:
            raise InputDataError(
                f"Hop record field {name!r} is not a short string: {_short(value)}."
            )
        return value
    # bool is an int to Python; a record never holds one
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputDataError(f"Hop record field {name!r} is not a number: {_short(value)}.")
    if name in _INTEGERS and not isinstance(value, int):
        raise InputDataError(f"Hop record field {name!r} is not a whole number: {_short(value)}.")
    if not math.isfinite(value) or value < 0:
        raise InputDataError(f"Hop record field {name!r} is {value}; expected a finite number ≥ 0.")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
