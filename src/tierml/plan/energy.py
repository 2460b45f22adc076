"""Energy a battery device spends on one request: compute, radio, and waiting.

E = P_active · t_compute + E_radio(bytes up, bytes down) + P_idle · t_wait, with the radio
term from the device's radio power model (tierml.core.tiers.RadioProfile: Huang et al.,
MobiSys 2012) at the link's rates, plus the radio's tail once per request that transfers
anything. W × ms = mJ.
"""

from __future__ import annotations

from dataclasses import dataclass

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
) -> Energy:
    """Energy of one request on ``device``; radio terms need both ``link`` and ``radio``."""
    radio_mj = 0.0
    if (uplink_bytes or downlink_bytes) and link is not None and radio is not None:
        radio_mj = radio.transfer_mj(uplink_bytes, link.uplink_mbps, uplink=True)
        radio_mj += radio.transfer_mj(downlink_bytes, link.downlink_mbps, uplink=False)
        radio_mj += radio.tail_mj
    return Energy(
        compute_mj=device.power_active_w * compute_ms,
        radio_mj=radio_mj,
        idle_mj=device.power_idle_w * wait_ms,
    )
