"""Places to run and the networks between them: tier, FaaS, link and radio profiles.

Plain data, loaded from the hardware and price catalog (``tierml.catalog``). Every figure
carries its source in ``sources`` (field name → where it comes from). Speeds are effective
throughputs of inference kernels, not peak figures: conv and gemm in GFLOP/s, memory in
GB/s, the units the latency model maps host timings to a tier with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from tierml.core.errors import Remedy, UnknownProfileError


class TierKind(StrEnum):
    DEVICE = "device"
    EDGE = "edge"
    CLOUD = "cloud"


@dataclass(frozen=True)
class Throughput:
    """Effective speed per throughput class (tierml.plan.op_classes.ThroughputClass)."""

    conv_gflops: float
    gemm_gflops: float
    memory_gbps: float

    def by_class(self) -> dict[str, float]:
        return {"conv": self.conv_gflops, "gemm": self.gemm_gflops, "memory": self.memory_gbps}

    def scaled(self, factor: float) -> Throughput:
        return Throughput(
            self.conv_gflops * factor, self.gemm_gflops * factor, self.memory_gbps * factor
        )


@dataclass(frozen=True)
class TierProfile:
    """A device class, edge server or cloud VM type."""

    name: str
    kind: TierKind
    description: str
    cores: int
    memory_mb: int
    throughput: Throughput  # all cores, batch 1
    power_active_w: float | None  # required for devices; None where no sourced figure exists
    power_idle_w: float | None
    battery: bool
    trusted: bool
    usd_per_hour: float | None = None  # on-demand IaaS price; None for owned hardware
    accelerator: str | None = None
    origin: str = ""  # the catalog file it was read from
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FaasProfile:
    """A serverless offering: price per GB-second and request, CPU share by memory size.

    CPU is allocated in proportion to memory (one full vCPU at ``mb_per_vcpu``), so the
    throughput of a function with ``memory_mb`` is the per-vCPU figure times its share.
    """

    name: str
    provider: str
    description: str
    usd_per_gb_s: float
    usd_per_request: float
    memory_mb: tuple[int, ...]  # the sizes a plan may choose
    mb_per_vcpu: float
    max_vcpus: int
    per_vcpu: Throughput
    cold_start_ms: float
    origin: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    def vcpus(self, memory_mb: int) -> float:
        return min(memory_mb / self.mb_per_vcpu, float(self.max_vcpus))

    def throughput(self, memory_mb: int) -> Throughput:
        return self.per_vcpu.scaled(self.vcpus(memory_mb))

    def usd_per_invocation(self, memory_mb: int, duration_ms: float) -> float:
        """The provider's bill for one request: GB-seconds of memory plus the request fee."""
        return self.usd_per_gb_s * (memory_mb / 1024) * (duration_ms / 1000) + self.usd_per_request


@dataclass(frozen=True)
class LinkProfile:
    name: str
    description: str
    uplink_mbps: float
    downlink_mbps: float
    rtt_ms: float
    loss: float  # fraction of packets lost
    jitter_ms: float = 0.0
    radio: str | None = None  # the radio profile a battery device spends energy on
    origin: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    def transfer_ms(self, nbytes: int, *, uplink: bool = True) -> float:
        """One-way time for ``nbytes``: half an RTT plus serialisation at the link's rate."""
        mbps = self.uplink_mbps if uplink else self.downlink_mbps
        return self.rtt_ms / 2 + nbytes * 8 / (mbps * 1e3)


@dataclass(frozen=True)
class RadioProfile:
    """Radio power while transferring: P = α_u·t_u + α_d·t_d + β (t in Mbps, P in mW).

    The form of Huang et al., "A Close Examination of Performance and Power
    Characteristics of 4G LTE Networks", MobiSys 2012; the tail is the time the radio
    stays in its high-power state after the last packet.
    """

    name: str
    description: str
    uplink_mw_per_mbps: float
    downlink_mw_per_mbps: float
    base_mw: float
    tail_ms: float = 0.0
    tail_mw: float = 0.0
    origin: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    def transfer_mj(self, nbytes: int, mbps: float, *, uplink: bool = True) -> float:
        """Energy to move ``nbytes`` at ``mbps``: (α + β/t) mJ per Mbit, tail excluded."""
        if nbytes <= 0:
            return 0.0
        alpha = self.uplink_mw_per_mbps if uplink else self.downlink_mw_per_mbps
        return (alpha + self.base_mw / mbps) * nbytes * 8 / 1e6

    @property
    def tail_mj(self) -> float:
        return self.tail_mw * self.tail_ms / 1000


@dataclass(frozen=True)
class Catalog:
    """Every profile the loaded catalog files define, by name."""

    tiers: Mapping[str, TierProfile]
    faas: Mapping[str, FaasProfile]
    links: Mapping[str, LinkProfile]
    radios: Mapping[str, RadioProfile]
    files: tuple[str, ...] = ()

    def tier(self, name: str) -> TierProfile:
        return _lookup(self.tiers, name, "tier")

    def faas_profile(self, name: str) -> FaasProfile:
        return _lookup(self.faas, name, "FaaS")

    def link(self, name: str) -> LinkProfile:
        return _lookup(self.links, name, "link")

    def radio(self, name: str) -> RadioProfile:
        return _lookup(self.radios, name, "radio")


T = TypeVar("T")


def _lookup(entries: Mapping[str, T], name: str, what: str) -> T:
    if name in entries:
        return entries[name]
    known = ", ".join(sorted(entries)) or "none"
    raise UnknownProfileError(
        f'No {what} profile named "{name}"; known: {known}.',
        hint="Pick one of those, or add it in a catalog file.",
        remedy=Remedy.ADD_CATALOG,
        value=name,
        candidates=tuple(sorted(entries)),
    )
