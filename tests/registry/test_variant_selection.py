"""Device-aware selection: the policy's rule, the exclusions and their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierml.core.errors import DeviceDescriptionError
from tierml.registry.device import Device, Rule, parse_device, read_device
from tierml.registry.records import VariantStatus
from tierml.registry.selection import Candidate, choose

EXAMPLES = Path(__file__).parents[2] / "examples" / "devices"
LOW_BATTERY = (Rule("smallest", accuracy_floor=0.9, battery_below=0.2, charging=False),)
POLICY = (*LOW_BATTERY, Rule("most-accurate", charging=True), Rule("fastest"))


def candidate(
    name: str, precision: str, size: int, accuracy: float, ms: float, **kw: Any
) -> Candidate:
    ops = kw.pop("ops", ["Conv", "Gemm", "Relu"])
    metrics = {
        "precision": precision,
        "size_bytes": size,
        "accuracy": accuracy,
        "latency_ms": {"raspberry-pi-4": ms},
        "host_latency_ms": ms / 10,
        "ops": ops,
    }
    status = kw.get("status", VariantStatus.PUBLISHED)
    return Candidate(name, kw.get("transform", name), "0" * 64, status, kw.get("reason", ""),
                     metrics)  # fmt: skip


CANDIDATES = [
    candidate("base", "fp32", 4000, 0.97, 9.0, transform="none"),
    candidate("half", "fp16", 2000, 0.97, 7.0, ops=["Cast", "Conv", "Gemm", "Relu"]),
    candidate("int8", "int8", 1000, 0.95, 5.0, ops=["Conv", "DequantizeLinear", "QuantizeLinear"]),
    candidate("pruned", "fp32", 800, 0.85, 6.0),
    candidate(
        "tiny", "int8", 500, 0.70, 4.0, status=VariantStatus.FLAGGED, reason="accuracy drop 0.27"
    ),
]


def device(**kw: Any) -> Device:
    return Device(name="d", profile="raspberry-pi-4", memory_mb=kw.pop("memory_mb", 64),
                  policy=kw.pop("policy", POLICY), **kw)  # fmt: skip


def test_low_battery_takes_the_smallest_variant_meeting_the_accuracy_floor() -> None:
    out = choose("m", 1, device(battery=0.1), CANDIDATES)
    assert out.chosen is not None and out.chosen.name == "int8"
    assert out.rule_index == 1 and out.to_dict()["rule"]["index"] == 1
    reasons = {c.name: c.reasons for c in out.candidates}
    assert reasons["pruned"] == ("accuracy 0.8500 below the floor 0.9",)
    assert reasons["tiny"][0].startswith("not published (flagged: accuracy drop")
    assert "int8 is the smallest" in out.explanation
    row = out.to_dict()["candidates"][-1]  # the JSON the command line prints
    assert row["name"] == "tiny" and row["eligible"] is False and isinstance(row["reasons"], list)


def test_on_charger_takes_the_most_accurate_then_the_fastest_of_equals() -> None:
    out = choose("m", 1, device(battery=0.1, charging=True), CANDIDATES)
    assert out.rule_index == 2
    assert out.chosen is not None
    assert out.chosen.name == "half"  # as accurate as base, faster on the profile


def test_a_device_that_cannot_run_an_op_gets_no_variant_needing_it() -> None:
    d = device(unsupported_ops=frozenset({"QuantizeLinear"}), precisions=("fp32", "fp16", "int8"))
    out = choose("m", 1, d, CANDIDATES)
    by_name = {c.name: c for c in out.candidates}
    assert not by_name["int8"].eligible
    assert by_name["int8"].reasons == ("needs ops the device cannot run: QuantizeLinear",)
    assert out.chosen is not None
    assert out.chosen.name == "half"  # mains power counts as a charger: most accurate


def test_precision_and_memory_exclude_with_their_reasons() -> None:
    d = device(precisions=("fp32",), memory_mb=0.002)  # ~2 KB
    out = choose("m", 1, d, CANDIDATES)
    by_name = {c.name: c for c in out.candidates}
    assert by_name["half"].reasons[0] == "needs fp16; the device runs fp32"
    assert "needs 0.0 MB; the device has 0.002 MB" in by_name["base"].reasons
    assert out.chosen is not None and out.chosen.name == "pruned"


def test_no_eligible_variant_is_said_plainly() -> None:
    d = device(ops=frozenset({"Relu"}))
    out = choose("m", 1, d, CANDIDATES)
    assert out.chosen is None and out.to_dict()["chosen"] is None
    assert out.explanation.startswith("No variant of m v1 can run on d")


def test_the_example_device_files_parse() -> None:
    low = read_device(EXAMPLES / "field-sensor-low-battery.toml")
    assert low.battery == 0.12 and not low.on_power and low.policy[0].accuracy_floor == 0.9
    assert read_device(EXAMPLES / "phone-on-charger.toml").on_power
    assert (
        "QuantizeLinear"
        in read_device(EXAMPLES / "microcontroller-no-quant-ops.toml").unsupported_ops
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"battery": 1.5}, "battery must be a share between 0 and 1"),
        ({"precisions": ["int4"]}, "unknown precision 'int4'"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"policy": [{"choose": "cheapest"}]}, "choose must be one of"),
        ({"policy": [{"choose": "fastest", "when": {"moon": "full"}}]}, "unknown condition 'moon'"),
    ],
)
def test_a_bad_device_description_names_the_problem(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(DeviceDescriptionError, match=message):
        parse_device(raw, origin="d.toml")
