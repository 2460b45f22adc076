"""Agent ↔ control plane messages: round trips, and untrusted input refused by field."""

from __future__ import annotations

import json
import random

import pytest

from tierml.core.errors import InputDataError
from tierml.fleet.protocol import (
    Assigned,
    CheckIn,
    CheckInReply,
    Command,
    EnrollRequest,
    Running,
    TelemetryBatch,
    TelemetryUpload,
)

SHA = "ab" * 32
RUNNING = Running(2, "int8", SHA)
BATCH = TelemetryBatch(
    seq=7, start=100.0, end=160.0, running=RUNNING, requests=40, errors=1,
    latency_ms_p50=1.5, latency_ms_p95=3.0, latency_ms_max=9.0, exits={"exit1": 30},
    memory_mb_peak=12.5, energy_mj=80.0, dropped_before=2,
)  # fmt: skip
REPORTED = {"battery": 0.4, "charging": False, "network": "lte", "ops": ["Conv", "Relu"]}


@pytest.mark.parametrize(
    "message",
    [
        EnrollRequest("tok", "cHVi", "cam-1", REPORTED),
        CheckIn(REPORTED, RUNNING, 1, None),
        CheckIn(REPORTED),
        TelemetryUpload((BATCH,)),
        CheckInReply(
            Assigned("digits", 2, "int8", SHA, 1234, "unplugged: smallest", {"signature": "x"}),
            (Command(3, "check_in_now"), Command(4, "roll_back", {"to": SHA})),
            30,
        ),
        CheckInReply(None),
    ],
    ids=lambda m: type(m).__name__,
)
def test_messages_survive_json(message) -> None:
    text = json.dumps(message.to_dict())
    assert type(message).from_dict(json.loads(text)) == message


@pytest.mark.parametrize(
    ("kind", "raw", "field"),
    [
        (
            CheckIn,
            {"reported": {}, "running": {"version": 0, "variant": "a", "sha256": SHA}},
            "check_in.running.version",
        ),
        (
            CheckIn,
            {"reported": {}, "running": {"version": 1, "variant": "a", "sha256": "x"}},
            "check_in.running.sha256",
        ),
        (CheckIn, {"reported": [1, 2]}, "reported"),
        (CheckIn, {"reported": {}, "start_failures": -1}, "check_in.start_failures"),
        (EnrollRequest, {"token": "", "public_key": "k", "name": "n"}, "enroll.token"),
        (EnrollRequest, {"token": "t" * 201, "public_key": "k", "name": "n"}, "enroll.token"),
        (TelemetryUpload, {"batches": []}, "telemetry.batches"),
        (TelemetryUpload, {"batches": [{**BATCH.to_dict(), "errors": 41}]}, "telemetry.batches[0]"),
        (
            TelemetryUpload,
            {"batches": [{**BATCH.to_dict(), "latency_ms_p95": float("nan")}]},
            "telemetry.batches[0].latency_ms_p95",
        ),
        (
            TelemetryUpload,
            {"batches": [{**BATCH.to_dict(), "seq": True}]},
            "telemetry.batches[0].seq",
        ),
    ],
)
def test_a_bad_field_is_named(kind, raw, field) -> None:
    with pytest.raises(InputDataError) as info:
        kind.from_dict(raw)
    assert info.value.details["field"] == field


def _mutate(value: object, rng: random.Random, depth: int = 0) -> object:
    """Structure-aware damage: drop, retype or inflate one thing somewhere."""
    if isinstance(value, dict) and value and depth < 4:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.2:
            del out[key]
        elif roll < 0.3:
            out["x" * rng.randint(1, 300)] = 1
        else:
            out[key] = _mutate(value[key], rng, depth + 1)
        return out
    if isinstance(value, list) and value and depth < 4:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = _mutate(out_list[i], rng, depth + 1)
        return out_list * rng.choice([1, 1, 200])
    return rng.choice(
        [None, True, -1, 0, 2**70, 1e308, float("inf"), "", "z" * 500, [], {}, [[[[[[1]]]]]],
         {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "ab" * 32, 3.5]
    )  # fmt: skip


def test_two_thousand_mutated_messages_raise_only_typed_errors() -> None:
    rng = random.Random(0)
    seeds = [
        (EnrollRequest, EnrollRequest("tok", "cHVi", "cam-1", REPORTED).to_dict()),
        (CheckIn, CheckIn(REPORTED, RUNNING, 1, SHA).to_dict()),
        (TelemetryUpload, TelemetryUpload((BATCH, BATCH)).to_dict()),
    ]
    accepted = refused = 0
    for _ in range(2000):
        kind, seed = rng.choice(seeds)
        raw = _mutate(seed, rng)
        try:
            kind.from_dict(raw)
            accepted += 1
        except InputDataError as exc:
            assert exc.details.get("field")
            refused += 1
    assert refused > 1000 and accepted > 0
