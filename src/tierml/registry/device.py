"""Device descriptions and selection policies, read from TOML.

A device names its catalog hardware profile, what it can run (ops, precisions, memory)
and its situation (battery level, on charger, network). A policy is an ordered list of
rules; the first whose ``when`` holds decides how to choose (see docs/registry.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierml.core.errors import DeviceDescriptionError

PRECISIONS = ("fp32", "fp16", "int8")
CHOICES = ("smallest", "most-accurate", "fastest")
_WHEN_KEYS = {"battery_below", "charging", "network"}
_RULE_KEYS = {"when", "choose", "accuracy_floor"}
_DEVICE_KEYS = {
    "name",
    "profile",
    "memory_mb",
    "precisions",
    "ops",
    "unsupported_ops",
    "battery",
    "charging",
    "network",
    "policy",
    # What a device agent's profile adds and reports (docs/fleet.md); selection ignores it.
    "bandwidth_mbps",
    "free_memory_mb",
}


@dataclass(frozen=True)
class Rule:
    choose: str
    accuracy_floor: float | None = None
    battery_below: float | None = None
    charging: bool | None = None
    network: tuple[str, ...] = ()

    def matches(self, device: Device) -> bool:
        if self.battery_below is not None and (
            device.battery is None or device.battery >= self.battery_below
        ):
            return False
        if self.charging is not None and device.on_power != self.charging:
            return False
        return not self.network or device.network in self.network

    def describe(self) -> str:
        conds = []
        if self.battery_below is not None:
            conds.append(f"battery < {self.battery_below:.0%}")
        if self.charging is not None:
            conds.append("on charger" if self.charging else "not on charger")
        if self.network:
            conds.append(f"network in {', '.join(self.network)}")
        floor = f" with accuracy ≥ {self.accuracy_floor}" if self.accuracy_floor else ""
        return f"when {' and '.join(conds) or 'always'}: {self.choose}{floor}"


# Used when neither the device file nor --policy declares one.
DEFAULT_POLICY = (
    Rule("smallest", accuracy_floor=None, battery_below=0.2, charging=False),
    Rule("most-accurate", charging=True),
    Rule("smallest", network=("2g", "3g", "lte-m", "nb-iot")),
    Rule("fastest"),
)


@dataclass(frozen=True)
class Device:
    name: str
    profile: str | None  # catalog tier whose predicted latency ranks "fastest"
    memory_mb: float | None
    precisions: tuple[str, ...] = PRECISIONS
    ops: frozenset[str] | None = None  # None: whatever ONNX Runtime runs
    unsupported_ops: frozenset[str] = frozenset()
    battery: float | None = None  # 0..1; None: mains powered
    charging: bool = False
    network: str | None = None
    policy: tuple[Rule, ...] = field(default=DEFAULT_POLICY)

    @property
    def on_power(self) -> bool:
        return self.charging or self.battery is None


def read_device(path: Path) -> Device:
    raw = _read_toml(path)
    return parse_device(raw, origin=str(path))


def read_policy(path: Path) -> tuple[Rule, ...]:
    raw = _read_toml(path)
    return parse_policy(raw.get("policy"), origin=str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeviceDescriptionError(
            f"Cannot read '{path}': {exc.strerror}.", hint="Check the path."
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeviceDescriptionError(
            f"'{path}' is not valid TOML: {exc}.", hint="See examples/devices/ for the format."
        ) from exc


def parse_device(raw: Mapping[str, Any], *, origin: str) -> Device:
    problems = [f"unknown key '{k}'" for k in sorted(set(raw) - _DEVICE_KEYS)]
    precisions = tuple(raw.get("precisions", PRECISIONS))
    problems += [f"unknown precision '{p}'" for p in precisions if p not in PRECISIONS]
    battery = raw.get("battery")
    if battery is not None and not (
        isinstance(battery, int | float) and 0.0 <= float(battery) <= 1.0
    ):
        problems.append(f"battery must be a share between 0 and 1, got {battery!r}")
    memory = raw.get("memory_mb")
    if memory is not None and not (isinstance(memory, int | float) and memory > 0):
        problems.append(f"memory_mb must be a positive number, got {memory!r}")
    if problems:
        raise DeviceDescriptionError(
            f"Device description '{origin}': {'; '.join(problems)}.",
            hint="See examples/devices/ for the format.",
        )
    ops = raw.get("ops")
    return Device(
        name=str(raw.get("name", Path(origin).stem)),
        profile=raw.get("profile"),
        memory_mb=float(memory) if memory is not None else None,
        precisions=precisions,
        ops=frozenset(ops) if ops is not None else None,
        unsupported_ops=frozenset(raw.get("unsupported_ops", ())),
        battery=float(battery) if battery is not None else None,
        charging=bool(raw.get("charging", False)),
        network=raw.get("network"),
        policy=parse_policy(raw["policy"], origin=origin) if "policy" in raw else DEFAULT_POLICY,
    )


def parse_policy(raw: Any, *, origin: str) -> tuple[Rule, ...]:
    if not isinstance(raw, list) or not raw:
        raise DeviceDescriptionError(
            f"'{origin}' declares no policy rules ([[policy]] tables).",
            hint='Add at least one: [[policy]] choose = "fastest"',
        )
    rules, problems = [], []
    for i, item in enumerate(raw):
        where = f"policy rule {i + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where} is not a table")
            continue
        problems += [f"{where}: unknown key '{k}'" for k in sorted(set(item) - _RULE_KEYS)]
        when = item.get("when", {})
        problems += [f"{where}: unknown condition '{k}'" for k in sorted(set(when) - _WHEN_KEYS)]
        choose = item.get("choose")
        if choose not in CHOICES:
            problems.append(f"{where}: choose must be one of {', '.join(CHOICES)}, got {choose!r}")
            continue
        network = when.get("network", ())
        rules.append(
            Rule(
                choose=choose,
                accuracy_floor=item.get("accuracy_floor"),
                battery_below=when.get("battery_below"),
                charging=when.get("charging"),
                network=(network,) if isinstance(network, str) else tuple(network),
            )
        )
    if problems:
        raise DeviceDescriptionError(
            f"'{origin}': {'; '.join(problems)}.", hint="See docs/registry.md, Selection."
        )
    return tuple(rules)
