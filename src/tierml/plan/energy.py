"""Energy a battery device spends on one request: compute, radio, and waiting.

E = P_active · t_compute + E_radio(bytes up, bytes down) + P_idle · t_wait, with the radio
term from the device's radio power model (tierml.core.tiers.RadioProfile: Huang et al.,
MobiSys 2012) at the link's rates. A radio stays in its high-power state for a tail after
the last packet (11.6 s on LTE): requests further apart than that pay the whole tail each
(``sporadic``); in a stream the radio never leaves that state between requests, and the
tail is paid once per stream, not per request. W × ms = mJ.
"""

from __future__ import annotations

from dataclasses import dataclass

from tierml.core.errors import CatalogError
from tierml.core.tiers import LinkProfile, RadioProfile, TierProfile


@dataclass(frozen=True)
class Energy:
    compute_mj: float
    radio_mj: float
    idle_mj: float

    @property
    def total_mj(self) -> float:
        return self.compute_mj + self.radio_mj + self.idle_mj


def request_energy(
    device: TierProfile,
    *,
    compute_ms: float,
    uplink_bytes: int = 0,
    downlink_bytes: int = 0,
    link: LinkProfile | None = None,
    radio: RadioProfile | None = None,
    wait_ms: float = 0.0,
    sporadic: bool = False,
) -> Energy:
    """Energy of one request on ``device``; radio terms need both ``link`` and ``radio``."""
    radio_mj = 0.0
    if (uplink_bytes or downlink_bytes) and link is not None and radio is not None:
        radio_mj = radio.transfer_mj(uplink_bytes, link.uplink_mbps, uplink=True)
        radio_mj += radio.transfer_mj(downlink_bytes, link.downlink_mbps, uplink=False)
        if sporadic:
            radio_mj += radio.tail_mj
    return Energy(
        compute_mj=_power(device, "power_active_w") * compute_ms if compute_ms else 0.0,
        radio_mj=radio_mj,
        idle_mj=_power(device, "power_idle_w") * wait_ms if wait_ms else 0.0,
    )


def _power(device: TierProfile, field: str) -> float:
    watts: float | None = getattr(device, field)
    if watts is None:
        raise CatalogError(
            f'Tier "{device.name}" has no {field} figure, needed for its energy.',
            hint=f"Add {field} (with its source) for it in a catalog file.",
        )
    return watts
