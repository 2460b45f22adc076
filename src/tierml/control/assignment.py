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


def device_from_report(name: str, reported: Mapping[str, Any]) -> Device:
    """The device description the selection policies read, from a check-in's report."""
    described = {k: reported[k] for k in DESCRIPTION_KEYS if k in reported}
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
