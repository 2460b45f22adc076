"""The emulated tiers and links the runtime tests deploy on."""

from __future__ import annotations

from tierml.core.tiers import TierKind
from tierml.experiments.emulation import EmulatedTier
from tierml.runtime.link_shaping import LinkShape

TIERS = [
    EmulatedTier("device", TierKind.DEVICE, 10.0, True),
    EmulatedTier("edge", TierKind.EDGE, 1.0, False),
    EmulatedTier("cloud", TierKind.CLOUD, 1.0, False),
]
LINKS = {
    ("device", "edge"): LinkShape(20.0, 20.0, 4.0),
    ("device", "cloud"): LinkShape(20.0, 20.0, 10.0),
    ("edge", "cloud"): LinkShape(1000.0, 1000.0, 2.0),
}
