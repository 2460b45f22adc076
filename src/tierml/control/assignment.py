"""What a device should run, decided at every check-in from the state it reports.

The version is the fleet's stable one for the model, or a rollout's target when the device
is in the rollout's current stage (the rollout policy says which devices are). The variant
is chosen by the registry's selection policies over the device's state *now* (battery,
charger, network, memory, ops, precisions): when the state changes — it unplugs, it moves
from Wi-Fi to LTE — the next check-in moves it to the variant that fits, and says why. A
variant being rolled out is withheld from the devices not yet in its rollout.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tierml.core.errors import DeviceDescriptionError
from tierml.registry.device import Device, parse_device
from tierml.registry.selection import Candidate, Selection, choose

# What a device reports that the selection policies read; the rest (bandwidth, free
# memory now, …) is kept for the fleet's view but does not enter the device description.
DESCRIPTION_KEYS = (
    "profile",
    "memory_mb",
    "precisions",
    "ops",
    "unsupported_ops",
    "battery",
    "charging",
    "network",
    "policy",
)


@dataclass(frozen=True)
class Assignment:
    model: str
    version: int
    variant: str  # "base": the version itself
    sha256: str
    reason: str  # the selection's explanation, and the rollout's part in it

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "variant": self.variant,
            "sha256": self.sha256,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Assignment | None:
        if not raw:
            return None
        return cls(
            str(raw["model"]),
            int(raw["version"]),
            str(raw["variant"]),
            str(raw["sha256"]),
            str(raw.get("reason", "")),
        )


# The types a report's description keys must have (None: not reported). A device is
# untrusted: a value of another type must be refused here, not fail deep in a policy.
_NUMBER = (int, float)
_SCALARS: dict[str, tuple[type, ...]] = {
    "profile": (str,),
    "memory_mb": _NUMBER,
    "battery": _NUMBER,
    "charging": (bool,),
    "network": (str,),
}
_NAME_LISTS = ("precisions", "ops", "unsupported_ops")
_CONDITIONS: dict[str, tuple[type, ...]] = {
    "battery_below": _NUMBER,
    "charging": (bool,),
    "network": (str, list),
}


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def report_type_problems(described: Mapping[str, Any]) -> list[str]:
    """Every description key of a report whose value has the wrong type."""
    problems = [
        f"{key} must be {' or '.join(k.__name__ for k in kinds)}"
        for key, kinds in _SCALARS.items()
        if described.get(key) is not None and not _is(described[key], kinds)
    ]
    problems += [
        f"{key} must be a list of names"
        for key in _NAME_LISTS
        if described.get(key) is not None and not _names(described[key])
    ]
    policy = described.get("policy")
    if policy is None:
        return problems
    rules = policy if isinstance(policy, list) else [policy]
    for i, rule in enumerate(rules):
        when = rule.get("when", {}) if isinstance(rule, dict) else None
        if not isinstance(rule, dict) or not isinstance(when, dict):
            problems.append(f"policy rule {i + 1} must be a table with a 'when' table")
            continue
        floor = rule.get("accuracy_floor")
        if floor is not None and not _is(floor, _NUMBER):
            problems.append(f"policy rule {i + 1}: accuracy_floor must be a number")
        for key, kinds in _CONDITIONS.items():
            value = when.get(key)
            if value is not None and not _is(value, kinds):
                problems.append(f"policy rule {i + 1}: {key} has the wrong type")
            elif isinstance(value, list) and not _names(value):
                problems.append(f"policy rule {i + 1}: {key} must list names")
    return problems


def device_from_report(name: str, reported: Mapping[str, Any]) -> Device:
    """The device description the selection policies read, from a check-in's report."""
    described = {k: reported[k] for k in DESCRIPTION_KEYS if k in reported}
    problems = report_type_problems(described)
    if problems:
        raise DeviceDescriptionError(
            f"Device '{name}' reported a state with {'; '.join(problems)}.",
            hint="Report the fields of examples/devices/*.toml with their types.",
            device=name,
        )
    try:
        return parse_device({"name": name, **described}, origin=name)
    except (TypeError, ValueError) as exc:  # a list where text belongs, and such
        raise DeviceDescriptionError(
            f"Device '{name}' reported a state that is not a device description: {exc}.",
            hint="Report the fields of examples/devices/*.toml with their types.",
            device=name,
        ) from exc


def assign(
    model: str,
    version: int,
    device: Device,
    candidates: list[Candidate],
    *,
    withheld: Collection[str] = (),
    note: str = "",
) -> tuple[Assignment | None, Selection]:
    """The variant of ``model`` v``version`` the device should run, and the selection that
    chose it; the assignment is None when nothing can run there. ``withheld``: variants
    (by name) this device may not get yet; ``note``: the rollout's part in the decision."""
    offered = [c for c in candidates if c.name not in withheld]
    selection = choose(model, version, device, offered)
    if selection.chosen is None:
        return None, selection
    reason = f"{note} {selection.explanation}".strip()
    chosen = selection.chosen
    return Assignment(model, version, chosen.name, chosen.sha256, reason), selection
