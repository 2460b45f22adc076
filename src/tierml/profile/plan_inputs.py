"""The planner's input from a profiled model and a topology: costs per node on every site.

Per-node time on a site is the time of the kernel the node heads (as ONNX Runtime fuses it
on this host), mapped to the site by its throughput ratios; fused nodes cost nothing on
their own. The kernel's time is its own, measured and shared out of the whole model's
run (``tierml.plan.kernel_times``), or the latency model's regression where the profile
or the parameters predate that. Codec time per MB is this host's measured time,
scaled by the memory-bandwidth ratio (codecs are memory-bound). What the adaptation
profiles will measure (variant speed-ups, exits, privacy curves) comes from
``tierml.plan.assumed_curves`` until then, and the output says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.core.tiers import LinkProfile, RadioProfile, Throughput, TierKind, TierProfile
from tierml.plan.assumed_curves import Curves, codec_drop, curves_for, with_leakage
from tierml.plan.latency_model import LatencyModel
from tierml.plan.op_classes import ThroughputClass, op_class, throughput_class
from tierml.plan.problem import (
    Billing,
    Codec,
    CostGraph,
    Hop,
    PlanProblem,
    PlanTensor,
    PlanTier,
    Site,
)
from tierml.plan.segment_features import part_features
from tierml.profile.codec_timing import CodecTimings
from tierml.profile.model_profile import Measured
from tierml.topology.loading import ResolvedLink, ResolvedTier, ResolvedTopology

FLOAT_MS = np.float64


def cost_graph(graph: ModelGraph, leakage: dict[str, float] | None = None) -> CostGraph:
    """The compute nodes in topological order and every activation between them."""
    order = [n.index for n in graph.compute_nodes]
    pos = {idx: p for p, idx in enumerate(order)}
    outputs = set(graph.outputs)
    tensors = []
    for t in graph.tensors.values():
        if t.kind not in (TensorKind.INPUT, TensorKind.ACTIVATION):
            continue
        producer = -1 if t.producer is None else pos.get(t.producer)
        if producer is None:
            continue
        readers = tuple(sorted({pos[c] for c in t.consumers if c in pos}))
        if not readers and t.name not in outputs:
            continue
        tensors.append(
            PlanTensor(
                name=t.name,
                nbytes=t.nbytes,
                producer=producer,
                consumers=readers,
                output=t.name in outputs,
                leakage=(leakage or {}).get(t.name, 1.0 if producer < 0 else 0.0),
            )
        )
    return CostGraph(
        name=graph.name,
        nodes=tuple(graph.nodes[i].name for i in order),
        macs=tuple(graph.nodes[i].macs for i in order),
        param_bytes=tuple(graph.nodes[i].param_bytes for i in order),
        tensors=tuple(tensors),
    )


@dataclass(frozen=True)
class HostKernels:
    """Per compute node, once per model: the latency model's time for the kernel it heads
    on this host (0 for nodes fused into another's kernel), the throughput class that
    kernel is scaled by, and the node's own class (what a variant speeds up)."""

    ms: np.ndarray
    kernel_class: np.ndarray  # ThroughputClass values
    node_class: np.ndarray
    run_ms: float  # a session's cost per run on this host
    boundary_ms_per_mb: float  # per MB entering and leaving a stage

    def on(self, ratios: dict[ThroughputClass, float]) -> np.ndarray:
        """ms per node on a tier with these host → tier time ratios."""
        scale = np.array([ratios[ThroughputClass(c)] for c in self.kernel_class])
        out: np.ndarray = self.ms * scale
        return out


def host_kernels(graph: ModelGraph, measured: Measured, model: LatencyModel) -> HostKernels:
    order = [n.index for n in graph.compute_nodes]
    pos = {idx: p for p, idx in enumerate(order)}
    ms = np.zeros(len(order), dtype=FLOAT_MS)
    kernel_class = np.array([ThroughputClass.MEMORY.value] * len(order), dtype=object)
    node_class = np.array(
        [throughput_class(op_class(graph, graph.nodes[i])).value for i in order], dtype=object
    )
    shares = measured.kernel_shares(graph, model.kernel_correction)
    if shares is not None:
        for k, group in enumerate(measured.kernels.groups):
            members = [n for n in group.nodes if n in pos]
            if members:
                head = group.head if group.head in pos else members[0]
                ms[pos[head]] += shares.ms[k]
                kernel_class[pos[head]] = shares.throughput[k].value
        return HostKernels(
            ms,
            kernel_class,
            node_class,
            shares.correction.run_ms,
            shares.correction.boundary_ms_per_mb,
        )
    parts = []
    grouped: set[int] = set()
    for group in measured.kernels.groups:
        members = [n for n in group.nodes if n in pos]
        if members:
            head = group.head if group.head in pos else members[0]
            parts.append((head, part_features(graph, members, head, group.kernel_ops)))
            grouped.update(members)
    parts += [(idx, part_features(graph, [idx], idx)) for idx in order if idx not in grouped]
    for head, part in parts:
        ms[pos[head]] += model.corrected_kernel_ms(part)
        kernel_class[pos[head]] = throughput_class(part.op_class).value
    return HostKernels(ms, kernel_class, node_class, model.run_ms, model.boundary_ms_per_mb)


def build_problem(
    graph: ModelGraph,
    measured: Measured,
    model: LatencyModel,
    topology: ResolvedTopology,
    codecs: CodecTimings,
    *,
    assumed: bool = False,
    measured_curves: Curves | None = None,
    measured_codecs: tuple[Codec, ...] = (),
    codec_ms: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[PlanProblem, Curves]:
    """The planning problem, and the curves it used (``assumed``: stand-ins for every knob).

    ``measured_curves`` (from an adaptation's curves file) replace the stand-ins; measured
    codecs replace same-named ones, their encode/decode ms per MB on this host given by
    ``codec_ms``.
    """
    costs = cost_graph(graph)
    curves = measured_curves or curves_for(costs, assumed=assumed)
    costs = with_leakage(costs, curves.leakage)
    plan_codec_list = merge_codecs(plan_codecs(codecs), measured_codecs)
    codecs = _with_measured_timings(codecs, codec_ms or {})
    kernels = host_kernels(graph, measured, model)
    tiers = []
    for tier in topology.tiers:
        sites = [
            _site(kernels, model, tier, hw, codecs, plan_codec_list, curves, hw.throughput)
            for hw in tier.hardware
        ]
        if tier.faas is not None:
            for mb in tier.faas_memory_mb:
                sites.append(
                    _site(
                        kernels,
                        model,
                        tier,
                        None,
                        codecs,
                        plan_codec_list,
                        curves,
                        tier.faas.throughput(mb),
                        faas_mb=mb,
                    )
                )
        hybrid = None
        if tier.hybrid:
            hybrid = Hop(
                f"{tier.name}:vm->faas", tier.hybrid_mbps, tier.hybrid_mbps, tier.hybrid_rtt_ms
            )
        tiers.append(PlanTier(tier.name, tier.kind, tier.trusted, tuple(sites), hybrid))
    links = {(lk.source, lk.target): _hop(lk) for lk in topology.links}
    top = topology.topology
    problem = PlanProblem(
        graph=costs,
        tiers=tuple(tiers),
        links=links,
        base_accuracy=curves.base_accuracy,
        variants=curves.variants,
        codecs=plan_codec_list,
        exits=curves.exits,
        exit_options=curves.exit_options,
        noise=curves.noise,
        objective=top.objective,
        constraints=top.constraints,
        workload=top.workload,
    )
    return problem, curves


PLAN_CODECS = ("fp32", "fp16", "int8", "int8+zstd", "fp16+lz4")


def plan_codecs(codecs: CodecTimings) -> tuple[Codec, ...]:
    """The codecs the planner chooses from: measured wire ratio, assumed accuracy drop."""
    out = [Codec("fp32", 1.0, 0.0)]
    for name in PLAN_CODECS[1:]:
        try:
            model = codecs.model(name)
        except KeyError:
            continue
        out.append(Codec(name, 1 / model.ratio, codec_drop(name)))
    return tuple(out)


def merge_codecs(host: tuple[Codec, ...], measured: tuple[Codec, ...]) -> tuple[Codec, ...]:
    by_name = {c.name: c for c in host}
    by_name.update({c.name: c for c in measured})
    return tuple(by_name.values())


@dataclass(frozen=True)
class _CodecMs:
    encode_ms_per_mb: float
    decode_ms_per_mb: float


class _MeasuredTimings:
    """Host codec timings, with the adaptation's measured codecs added by name."""

    def __init__(self, host: CodecTimings, extra: Mapping[str, tuple[float, float]]) -> None:
        self.host, self.extra = host, extra

    def model(self, name: str) -> object:
        if name in self.extra:
            return _CodecMs(*self.extra[name])
        return self.host.model(name)


def _with_measured_timings(
    host: CodecTimings, extra: Mapping[str, tuple[float, float]]
) -> CodecTimings:
    return host if not extra else _MeasuredTimings(host, extra)  # type: ignore[return-value]


def _site(
    kernels: HostKernels,
    model: LatencyModel,
    tier: ResolvedTier,
    hw: TierProfile | None,
    codecs: CodecTimings,
    codec_list: tuple[Codec, ...],
    curves: Curves,
    throughput: Throughput,
    faas_mb: int = 0,
) -> Site:
    ratios = model.ratios_to(throughput.by_class())
    base, classes = kernels.on(ratios), kernels.node_class
    memory_ratio = ratios[ThroughputClass.MEMORY]
    accelerated = hw is not None and hw.accelerator is not None
    variants = {
        v.name: base * curves.variant_speed(v.name, classes, accelerated) for v in curves.variants
    }
    # An exit head (pooling + a small linear layer) is memory-bound: it reads its tap once.
    heads = tuple(
        2 * e_bytes / (throughput.memory_gbps * 1e6) + kernels.run_ms * memory_ratio
        for e_bytes in curves.exit_tap_bytes
    )
    enc = {c.name: 0.0 for c in codec_list}
    dec = dict(enc)
    for c in codec_list:
        if c.name != "fp32":
            cm = codecs.model(c.name)
            enc[c.name] = cm.encode_ms_per_mb * memory_ratio
            dec[c.name] = cm.decode_ms_per_mb * memory_ratio
    common = {
        "tier": tier.name,
        "node_ms": variants,
        "run_ms": kernels.run_ms * memory_ratio,
        "boundary_ms_per_mb": kernels.boundary_ms_per_mb * memory_ratio,
        "encode_ms_per_mb": enc,
        "decode_ms_per_mb": dec,
        "exit_head_ms": heads,
        "peak_gflops": max(throughput.conv_gflops, throughput.gemm_gflops),
    }
    if hw is not None:
        return Site(
            name=tier.name if tier.kind is not TierKind.CLOUD else f"{tier.name}:{hw.name}",
            billing=Billing.VM if hw.usd_per_hour is not None else Billing.OWNED,
            memory_mb=tier.memory_mb or hw.memory_mb,
            power_active_w=hw.power_active_w if hw.battery else None,
            power_idle_w=hw.power_idle_w if hw.battery else None,
            battery=hw.battery,
            usd_per_hour=hw.usd_per_hour or 0.0,
            **common,  # type: ignore[arg-type]
        )
    faas = tier.faas
    if faas is None:
        raise ValueError(f"tier {tier.name} has neither hardware nor FaaS")
    return Site(
        name=f"{tier.name}:{faas.name}@{faas_mb}MB",
        billing=Billing.FAAS,
        memory_mb=float(faas_mb),
        usd_per_gb_s=faas.usd_per_gb_s,
        usd_per_request=faas.usd_per_request,
        faas_memory_mb=faas_mb,
        cold_start_ms=faas.cold_start_ms,
        **common,  # type: ignore[arg-type]
    )


def _hop(link: ResolvedLink) -> Hop:
    lp: LinkProfile = link.link
    radio: RadioProfile | None = link.radio
    up = radio.transfer_mj(1_000_000, lp.uplink_mbps) if radio else 0.0
    down = radio.transfer_mj(1_000_000, lp.downlink_mbps, uplink=False) if radio else 0.0
    return Hop(
        name=lp.name,
        uplink_mbps=lp.uplink_mbps,
        downlink_mbps=lp.downlink_mbps,
        rtt_ms=lp.rtt_ms,
        loss=lp.loss,
        radio_mj_per_mb_up=up,
        radio_mj_per_mb_down=down,
        radio_tail_mj=radio.tail_mj if radio else 0.0,
    )
