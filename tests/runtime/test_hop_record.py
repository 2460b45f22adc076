"""Per-hop records: written once, read back as written; a peer's malformed record is an
input error, never a KeyError; ``tierml infer --format json`` keeps its keys."""

from __future__ import annotations

import json

import pytest

from tierml.core.errors import InputDataError
from tierml.runtime.client import InferenceRecord
from tierml.runtime.hop_record import HopRecord, hops_from_json, hops_to_json

DEVICE = HopRecord(tier="device", model="p0.s0", compute_ms=1.5, emulated_ms=13.5, exit=None)
EDGE = HopRecord(
    tier="edge",
    model="p0.s1",
    decode_ms=0.1,
    compute_ms=2.0,
    emulated_ms=0.0,
    bytes_in=4096,
    exit=None,
    batch=2,
    batch_rows=2,
    queue_ms=0.4,
    wire_ms=3.0,
    call_ms=9.0,
    bytes_out=1024,
    encode_ms=0.2,
    total_ms=12.0,
)
CLOUD = HopRecord(
    "cloud", "p0.s2", decode_ms=0.1, compute_ms=4.0, bytes_in=1024, exit="e1", batch=1,
    total_ms=4.5,
)  # fmt: skip


def test_records_round_trip_and_print_the_keys_they_always_had():
    assert hops_from_json(hops_to_json([DEVICE, EDGE, CLOUD])) == [DEVICE, EDGE, CLOUD]
    # The device's own record, a forwarding batched tier's and a last tier's, in the key
    # order `tierml infer --format json` has always printed.
    assert list(DEVICE.to_dict()) == ["tier", "model", "compute_ms", "emulated_ms", "exit"]
    assert list(EDGE.to_dict()) == [
        "tier", "model", "decode_ms", "compute_ms", "emulated_ms", "bytes_in", "exit", "batch",
        "batch_rows", "queue_ms", "wire_ms", "call_ms", "bytes_out", "encode_ms", "total_ms",
    ]  # fmt: skip
    assert list(CLOUD.to_dict()) == [
        "tier", "model", "decode_ms", "compute_ms", "emulated_ms", "bytes_in", "exit", "batch",
        "total_ms",
    ]  # fmt: skip
    record = InferenceRecord({}, "p0", ["device", "edge", "cloud"], "e1", [DEVICE, EDGE], 20.0)
    printed = json.loads(json.dumps(record.to_dict()))
    assert list(printed) == [
        "plan", "path", "exit", "hops", "total_ms", "bytes_up", "bytes_down", "wire_ms",
        "fallbacks", "outputs",
    ]  # fmt: skip
    assert printed["hops"] == [DEVICE.to_dict(), EDGE.to_dict()]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "null",
        "{}",
        "[1]",
        '"edge"',
        "[[]]",
        '[{"model": "p0.s1"}]',
        '[{"tier": "edge"}]',
        '[{"tier": 3, "model": "m"}]',
        '[{"tier": "edge", "model": "m", "compute_ms": "fast"}]',
        '[{"tier": "edge", "model": "m", "compute_ms": -1}]',
        '[{"tier": "edge", "model": "m", "compute_ms": NaN}]',
        '[{"tier": "edge", "model": "m", "compute_ms": 1e999}]',
        '[{"tier": "edge", "model": "m", "bytes_in": 1.5}]',
        '[{"tier": "edge", "model": "m", "batch": true}]',
        '[{"tier": "edge", "model": "m", "shoe_size": 44}]',
        '[{"tier": "' + "e" * 1000 + '", "model": "m"}]',
        "[" * 100_000 + "]" * 100_000,
        json.dumps([{"tier": "edge", "model": "m"}] * 1000),
    ],
)
def test_a_malformed_record_from_a_peer_is_an_input_error(text):
    with pytest.raises(InputDataError) as info:
        hops_from_json(text)
    assert len(info.value.one_line()) < 400


def test_a_parameter_that_is_not_text_is_an_input_error():
    for value in (3, 2.5, True, None):
        with pytest.raises(InputDataError):
            hops_from_json(value)
