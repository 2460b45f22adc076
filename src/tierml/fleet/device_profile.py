"""The device's profile file: what it is and its situation now, as the agent reports it.

The file is a device description (``examples/devices/*.toml``: catalog profile, memory,
precisions, ops, selection policy) extended with what changes while the device runs: its
battery level, whether it is charging, its network and bandwidth, its free memory. The
agent reads it again at every check-in, so whatever keeps it current — a power daemon, a
script, a person editing it — moves the device to the variant that fits its situation.

A file caught half-written (or edited into something invalid) is refused with every
problem listed; the agent then reports the last profile it read whole.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.core.errors import DeviceDescriptionError, InputDataError
from tierml.fleet.protocol import CheckIn

PRECISIONS = ("fp32", "fp16", "int8")
MAX_OPS = 64  # what one check-in may list (the protocol's list bound)
_TEXT_KEYS = ("name", "profile", "network")
_LIST_KEYS = ("ops", "unsupported_ops", "precisions")
_BOOL_KEYS = ("charging",)
# key → (smallest value, largest value or None): numbers the file may hold.
_NUMBER_KEYS: dict[str, tuple[float, float | None]] = {
    "memory_mb": (0.0, None),  # what a model may take
    "free_memory_mb": (0.0, None),  # free now
    "battery": (0.0, 1.0),  # share of a full charge; absent: mains powered
    "bandwidth_mbps": (0.0, None),  # the network's bandwidth now
}
KEYS = frozenset((*_TEXT_KEYS, *_LIST_KEYS, *_BOOL_KEYS, *_NUMBER_KEYS, "policy"))


@dataclass(frozen=True)
class DeviceProfile:
    """A device profile file as read once: its name and the state the agent reports."""

    name: str
    state: Mapping[str, Any]  # every key of the file but ``name``, as plain JSON data

    @property
    def catalog_profile(self) -> str | None:
        value = self.state.get("profile")
        return value if isinstance(value, str) else None

    def reported(self) -> dict[str, Any]:
        """What a check-in (or the enrolment) reports: a copy of the state."""
        return dict(self.state)


def read_device_profile(path: Path) -> DeviceProfile:
    """Read and check ``path``; DeviceDescriptionError listing every problem otherwise."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DeviceDescriptionError(
            f"Cannot read the device profile {path}: {error.strerror}.",
            hint="Check the path of the device profile file.",
            file=str(path),
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DeviceDescriptionError(
            f"The device profile {path} is not valid TOML: {error}.",
            hint="See examples/devices/ for the format.",
            file=str(path),
        ) from None
    return parse_device_profile(raw, origin=str(path))


def parse_device_profile(raw: Mapping[str, Any], *, origin: str) -> DeviceProfile:
    problems = [f"unknown key '{key}'" for key in sorted(set(raw) - KEYS)]
    for key in _TEXT_KEYS:
        if key in raw and not (isinstance(raw[key], str) and 0 < len(raw[key]) <= 200):
            problems.append(f"{key} must be a text of 1 to 200 characters, got {raw[key]!r}")
    for key in _BOOL_KEYS:
        if key in raw and not isinstance(raw[key], bool):
            problems.append(f"{key} must be true or false, got {raw[key]!r}")
    for key, (low, high) in _NUMBER_KEYS.items():
        if key in raw and not _number_within(raw[key], low, high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"≥ {low:g}"
            problems.append(f"{key} must be a number {bound}, got {raw[key]!r}")
    for key in _LIST_KEYS:
        value = raw.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(f"{key} must be a list of texts, got {value!r}")
        elif len(value) > MAX_OPS:
            problems.append(f"{key} lists {len(value)} entries; at most {MAX_OPS}")
    precisions = raw.get("precisions", [])
    if isinstance(precisions, list):
        problems += [f"unknown precision {p!r}" for p in precisions if p not in PRECISIONS]
    policy = raw.get("policy", [])
    if not (isinstance(policy, list) and all(isinstance(rule, dict) for rule in policy)):
        problems.append("policy must be [[policy]] tables")
    state = {k: v for k, v in raw.items() if k != "name"}
    if not problems:
        try:  # what the control plane would refuse is refused here, naming the field
            CheckIn.from_dict({"reported": state})
        except InputDataError as error:
            problems.append(error.message.rstrip("."))
    if problems:
        raise DeviceDescriptionError(
            f"Device profile '{origin}': {'; '.join(problems)}.",
            hint="See examples/devices/ for the format.",
            file=origin,
        )
    return DeviceProfile(str(raw.get("name") or Path(origin).stem), state)


def _number_within(value: object, low: float, high: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= low and (high is None or value <= high)
