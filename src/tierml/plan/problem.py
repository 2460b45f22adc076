"""What the placement optimizer is given: a model's costs, the places, the knobs, the goal.

Plain data, no I/O. ``tierml.profile.plan_inputs`` builds it from a model, its profile and
a topology; tests build it by hand. The notation follows the survey's §2.2 formulation
(Duan et al., "Distributed artificial intelligence empowered by end-edge-cloud computing",
the placement survey in the papers): tiers device → edge → cloud, a monotone assignment
of layers, exit rates β, compression γ/κ on what crosses, and IaaS vs FaaS provisioning.

Units: milliseconds, bytes, US dollars, millijoules. A *site* is one concrete way to run a
stage on a tier (the tier's hardware, or one VM type, or one FaaS memory size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from tierml.core.errors import PlanInputError
from tierml.core.tiers import TierKind

FloatArray = npt.NDArray[np.float64]

BASE_VARIANT = "fp32"
RAW_CODEC = "fp32"
NO_EXITS = "off"
NO_NOISE = "none"


@dataclass(frozen=True)
class PlanTensor:
    """A tensor that may cross a cut: produced by a node (or a graph input), read by others."""

    name: str
    nbytes: int
    producer: int  # node index; -1 for a graph input, which originates on the first tier
    consumers: tuple[int, ...]
    output: bool  # a graph output: returned to the first tier
    leakage: float  # how well the input is reconstructed from it, 0..1 (1: the raw input)


@dataclass(frozen=True)
class CostGraph:
    """The compute nodes of a model in topological order and the tensors between them."""

    name: str
    nodes: tuple[str, ...]
    macs: tuple[int, ...]
    param_bytes: tuple[int, ...]
    tensors: tuple[PlanTensor, ...]

    @property
    def size(self) -> int:
        return len(self.nodes)


class Billing(StrEnum):
    OWNED = "owned"  # the user's hardware: no marginal $
    VM = "vm"  # IaaS: $/hour per instance, amortised over the request rate
    FAAS = "faas"  # serverless: $/GB-s × duration + $/request, cold starts


@dataclass(frozen=True)
class Site:
    """One concrete place a stage can run, with its predicted per-node times."""

    name: str
    tier: str
    billing: Billing
    node_ms: Mapping[str, FloatArray]  # variant → ms per node (batch 1), fp32 always present
    run_ms: float  # per stage run: session overhead
    boundary_ms_per_mb: float  # layout copies at the stage's edges, per MB entering/leaving
    encode_ms_per_mb: Mapping[str, float]  # codec → ms per raw MB encoded on this site
    decode_ms_per_mb: Mapping[str, float]
    exit_head_ms: tuple[float, ...]  # per exit point, its classifier head
    memory_mb: float
    peak_gflops: float  # for the lower bound: the fastest throughput class
    power_active_w: float | None = None
    power_idle_w: float | None = None
    battery: bool = False
    usd_per_hour: float = 0.0  # VM
    usd_per_gb_s: float = 0.0  # FaaS
    usd_per_request: float = 0.0  # FaaS
    faas_memory_mb: int = 0
    cold_start_ms: float = 0.0


@dataclass(frozen=True)
class Hop:
    """One network link of a route: a sender's uplink into the next tier."""

    name: str
    uplink_mbps: float
    downlink_mbps: float
    rtt_ms: float
    loss: float = 0.0
    # Energy the first tier's radio spends per MB sent / received on this hop (0: not a
    # battery device, or no radio model); the tail is paid per request when sporadic.
    radio_mj_per_mb_up: float = 0.0
    radio_mj_per_mb_down: float = 0.0
    radio_tail_mj: float = 0.0

    def ms_per_byte_up(self) -> float:
        # Lost packets are resent: the goodput is the rate times (1 − loss).
        return 8 / (self.uplink_mbps * 1e3 * (1 - self.loss))

    def ms_per_byte_down(self) -> float:
        return 8 / (self.downlink_mbps * 1e3 * (1 - self.loss))


@dataclass(frozen=True)
class PlanTier:
    name: str
    kind: TierKind
    trusted: bool
    sites: tuple[Site, ...]
    # A cloud tier may split its stage: shallow nodes on a VM, deep (rarely reached) ones
    # on FaaS, across this in-cloud hop.
    hybrid_hop: Hop | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    accuracy_drop: float  # points of accuracy lost when any stage runs it
    param_factor: float  # weight bytes relative to fp32
    # Its tensors' shapes differ from the base's (a pruned model's channels), so no stage
    # of it can hand a tensor to a stage of another variant: it runs on every stage or none.
    whole_plan: bool = False


def mixes_variants(variants: Sequence[Variant]) -> bool:
    """Whether these per-stage variants mix a whole-plan variant with another."""
    names = {v.name for v in variants}
    return len(names) > 1 and any(v.whole_plan for v in variants)


@dataclass(frozen=True)
class Codec:
    name: str
    ratio: float  # wire bytes / raw bytes
    accuracy_drop: float
    at_tensor: str | None = None  # a learned bottleneck: only for a cut of exactly this tensor


@dataclass(frozen=True)
class ExitPoint:
    """An internal classifier reading the output of node ``tap``."""

    name: str
    tap: int
    out_bytes: int  # the prediction returned when a request exits here


@dataclass(frozen=True)
class ExitOption:
    """One threshold setting of every exit: the profiled curve's point."""

    name: str
    rates: tuple[float, ...]  # per exit: fraction of the requests reaching it that exit
    accuracy: float  # of the whole multi-exit model at this setting, fp32, no codec


@dataclass(frozen=True)
class NoiseOption:
    """Noise added at the first cut leaving the trusted tiers."""

    name: str
    accuracy_drop: float
    leakage_factor: float  # leakage with noise / without, from the privacy curve


class Mode(StrEnum):
    LATENCY = "latency"  # one request at a time: expected end-to-end latency
    THROUGHPUT = "throughput"  # a pipelined stream: the bottleneck stage's time


class SloStat(StrEnum):
    MEAN = "mean"
    P95 = "p95"


@dataclass(frozen=True)
class Objective:
    """Weights of the weighted sum (survey §2.2: w^L·L + w^P·P + w^C·C, plus energy)."""

    latency_per_ms: float = 1.0
    cost_per_usd_per_million: float = 0.0  # weight of one $ per million requests
    leakage: float = 0.0  # weight of leakage 1.0 (the raw input)
    energy_per_mj: float = 0.0  # device energy per request
    mode: Mode = Mode.LATENCY


@dataclass(frozen=True)
class Constraints:
    slo_ms: float | None = None
    slo_stat: SloStat = SloStat.MEAN
    accuracy_floor: float | None = None
    max_leakage: float | None = None
    raw_input_trusted_only: bool = False
    budget_per_million: float | None = None  # $ per million requests
    enforce_memory: bool = True


@dataclass(frozen=True)
class Workload:
    requests_per_second: float = 1.0
    vm_utilisation: float = 0.7  # target load of a VM before another is added
    faas_keep_alive_s: float = 300.0  # idle time before a warm FaaS instance is reclaimed
    sporadic: bool = False  # requests far apart: the radio tail is paid per request


@dataclass(frozen=True)
class PlanProblem:
    graph: CostGraph
    tiers: tuple[PlanTier, ...]  # ordered; the first is where inputs originate
    links: Mapping[tuple[str, str], Hop]  # (from tier, to tier) → hop
    base_accuracy: float = 1.0
    variants: tuple[Variant, ...] = (Variant(BASE_VARIANT, 0.0, 1.0),)
    codecs: tuple[Codec, ...] = (Codec(RAW_CODEC, 1.0, 0.0),)
    exits: tuple[ExitPoint, ...] = ()
    exit_options: tuple[ExitOption, ...] = ()
    noise: tuple[NoiseOption, ...] = (NoiseOption(NO_NOISE, 0.0, 1.0),)
    objective: Objective = field(default_factory=Objective)
    constraints: Constraints = field(default_factory=Constraints)
    workload: Workload = field(default_factory=Workload)

    def variant(self, name: str) -> Variant:
        return _by_name(self.variants, name, "variant")

    def codec(self, name: str) -> Codec:
        return _by_name(self.codecs, name, "codec")

    def exit_option(self, name: str) -> ExitOption:
        if name == NO_EXITS:
            return ExitOption(NO_EXITS, tuple(0.0 for _ in self.exits), self.base_accuracy)
        return _by_name(self.exit_options, name, "exit option")

    def noise_option(self, name: str) -> NoiseOption:
        return _by_name(self.noise, name, "noise option")

    def all_exit_options(self) -> tuple[ExitOption, ...]:
        return (self.exit_option(NO_EXITS), *self.exit_options)


_Named = TypeVar("_Named", Variant, Codec, ExitOption, NoiseOption)


def _by_name(items: Sequence[_Named], name: str, what: str) -> _Named:
    for item in items:
        if item.name == name:
            return item
    known = ", ".join(i.name for i in items) or "none"
    raise PlanInputError(f'No {what} named "{name}"; known: {known}.')


def validate(problem: PlanProblem) -> None:
    """Check the invariants the solvers rely on; every problem found, in one error."""
    problems: list[str] = []
    g = problem.graph
    n = g.size
    if n == 0:
        problems.append("the graph has no compute nodes")
    if len(g.macs) != n or len(g.param_bytes) != n:
        problems.append("macs/param_bytes do not have one entry per node")
    for t in g.tensors:
        if not -1 <= t.producer < n or any(not 0 <= c < n for c in t.consumers):
            problems.append(f'tensor "{t.name}" refers to a node that does not exist')
        elif any(c <= t.producer for c in t.consumers):
            problems.append(f'tensor "{t.name}" is read before it is produced (not topological)')
        if not 0.0 <= t.leakage <= 1.0:
            problems.append(f'tensor "{t.name}" has leakage {t.leakage} outside [0, 1]')
    if not problem.tiers:
        problems.append("no tiers")
    elif len(problem.tiers[0].sites) != 1:
        problems.append(f'the first tier "{problem.tiers[0].name}" must have exactly one site')
    variants = {v.name for v in problem.variants}
    if BASE_VARIANT not in variants:
        problems.append(f'the variants must include "{BASE_VARIANT}"')
    if RAW_CODEC not in {c.name for c in problem.codecs}:
        problems.append(f'the codecs must include "{RAW_CODEC}"')
    for tier in problem.tiers:
        for s in tier.sites:
            problems += _site_problems(s, n, len(problem.exits), problem)
    for (a, b), hop in problem.links.items():
        if hop.uplink_mbps <= 0 or hop.downlink_mbps <= 0:
            problems.append(f"link {a} → {b}: bandwidth must be > 0")
        if hop.rtt_ms < 0 or not 0 <= hop.loss < 1:
            problems.append(f"link {a} → {b}: RTT must be ≥ 0 and loss in [0, 1)")
    problems += _exit_problems(problem)
    if problem.workload.requests_per_second <= 0:
        problems.append("requests_per_second must be > 0")
    if not 0 < problem.workload.vm_utilisation <= 1:
        problems.append("vm_utilisation must be in (0, 1]")
    if problems:
        raise PlanInputError(
            "The planning problem is malformed: " + "; ".join(problems) + ".",
            hint="Fix the topology or the profile it was built from.",
        )


def _site_problems(site: Site, n: int, exits: int, problem: PlanProblem) -> list[str]:
    out = []
    if BASE_VARIANT not in site.node_ms:
        out.append(f'site "{site.name}" has no {BASE_VARIANT} node times')
    for variant, ms in site.node_ms.items():
        if len(ms) != n:
            out.append(f'site "{site.name}" variant {variant}: {len(ms)} node times for {n} nodes')
        elif np.any(ms < 0) or not np.all(np.isfinite(ms)):
            out.append(f'site "{site.name}" variant {variant}: negative or non-finite times')
    if len(site.exit_head_ms) != exits:
        out.append(f'site "{site.name}" has {len(site.exit_head_ms)} exit head times')
    for c in problem.codecs:
        if c.name not in site.encode_ms_per_mb or c.name not in site.decode_ms_per_mb:
            out.append(f'site "{site.name}" has no timing for codec {c.name}')
    if site.billing is Billing.FAAS and site.faas_memory_mb <= 0:
        out.append(f'FaaS site "{site.name}" has no memory size')
    return out


def _exit_problems(problem: PlanProblem) -> list[str]:
    """Exits must sit in order on tensors every path passes (articulation points).

    That is what makes a node's probability of running depend only on which exits come
    before it, as in BranchyNet's and SDN's backbones.
    """
    out = []
    taps = [e.tap for e in problem.exits]
    if taps != sorted(set(taps)):
        out.append("exit points must be listed in topological order, one per tap node")
    producers: dict[int, list[int]] = {}
    for t in problem.graph.tensors:
        for c in t.consumers:
            producers.setdefault(c, []).append(t.producer)
    for e in problem.exits:
        if not 0 <= e.tap < problem.graph.size:
            out.append(f'exit "{e.name}" taps node {e.tap}, which does not exist')
            continue
        bypass = next(
            (
                t.name
                for t in problem.graph.tensors
                if t.producer < e.tap and any(c > e.tap for c in t.consumers)
            ),
            None,
        )
        if bypass is not None:
            out.append(f'exit "{e.name}" is bypassed by tensor "{bypass}"')
        elif len(_ancestors(producers, e.tap)) != e.tap:
            out.append(f'exit "{e.name}": a node before it in the order is not its ancestor')
    for opt in problem.exit_options:
        if len(opt.rates) != len(problem.exits) or any(not 0 <= r <= 1 for r in opt.rates):
            out.append(f'exit option "{opt.name}" needs one rate in [0, 1] per exit')
    return out


def ancestors(graph: CostGraph, node: int) -> set[int]:
    """Every node ``node`` depends on, directly or not."""
    producers: dict[int, list[int]] = {}
    for t in graph.tensors:
        for c in t.consumers:
            producers.setdefault(c, []).append(t.producer)
    return _ancestors(producers, node)


def _ancestors(producers: Mapping[int, Sequence[int]], node: int) -> set[int]:
    seen: set[int] = set()
    stack = [node]
    while stack:
        for p in producers.get(stack.pop(), ()):
            if p >= 0 and p not in seen:
                seen.add(p)
                stack.append(p)
    return seen
