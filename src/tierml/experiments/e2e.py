"""`tierml bench e2e`: plans run for real, measured against the baselines in one session.

Per model, one deployment on this host: device (the client, emulated ``slowdown``×
slower), an edge tier (2× slower than the host) and a cloud tier (host speed); the
device reaches each over its own emulated uplink at the point's bandwidth, the edge
reaches the cloud over a fast backbone. At every (bandwidth, slowdown) point the
planner plans on the emulated figures; tierml's plan and every baseline's plan are
then run interleaved (one request of each per round, the order shuffled per round),
and their measured p50/p95 are reported beside the planner's predictions.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tierml.adapt.curves_file import MeasuredCurves, load_curves, read
from tierml.core.tiers import TierKind
from tierml.core.workspace import Workspace
from tierml.experiments.e2e_models import E2EModel, Feeds, model_inputs
from tierml.experiments.emulation import EmulatedTier, anchored_to_measurement, emulated_topology
from tierml.experiments.runtime_costs import RuntimeCosts, measure_runtime_costs, with_runtime_costs
from tierml.experiments.split_overhead import measure_split_overhead
from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.latency_model import LatencyModel
from tierml.plan.layout import layouts
from tierml.plan.metrics import evaluate
from tierml.plan.portfolio import Entry, build_portfolio, candidate_key
from tierml.plan.problem import NO_EXITS, NO_NOISE, Constraints, PlanProblem
from tierml.plan.search import plan as solve
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.codec_timing import CodecTimings
from tierml.profile.fusion import fusion_groups, optimised_session
from tierml.profile.model_profile import Measured
from tierml.profile.plan_inputs import build_problem, cost_graph, host_kernels
from tierml.profile.planning import planning_inputs
from tierml.profile.sessions import OptLevel
from tierml.runtime.bundle_build import ExitBinding, build_bundle
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import Deployment
from tierml.runtime.link_shaping import EMULATION, LinkShape
from tierml.runtime.stage_exec import EMULATION as TIER_EMULATION

STRATEGIES = ("tierml", "device-only", "edge-only", "cloud-only", "neurosurgeon", "dads")
EDGE_SLOWDOWN = 2.0
DEVICE_EDGE_RTT_MS, DEVICE_CLOUD_RTT_MS = 10.0, 40.0
BACKBONE = LinkShape(1000.0, 1000.0, 20.0)


@dataclass(frozen=True)
class E2EConfig:
    models: tuple[E2EModel, ...]
    bandwidths_mbps: tuple[float, ...] = (1.0, 10.0, 100.0)
    slowdowns: tuple[float, ...] = (3.0, 10.0)
    rounds: int = 7
    stream_requests: int = 16
    stream_clients: int = 4
    overhead_rounds: int = 15
    seed: int = 0


@dataclass
class Point:
    model: str
    bandwidth_mbps: float
    slowdown: float
    measured_p50_ms: dict[str, float] = field(default_factory=dict)
    measured_p95_ms: dict[str, float] = field(default_factory=dict)
    measured_mean_ms: dict[str, float] = field(default_factory=dict)
    exit_share: dict[str, float] = field(default_factory=dict)  # requests leaving early
    bytes_up_mean: dict[str, float] = field(default_factory=dict)  # device → first remote tier
    predicted_ms: dict[str, float] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)  # strategy → layout and cut
    stream_rps: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def host_totals(
    analysed: AnalysedModel, measured: Measured, lm: LatencyModel
) -> tuple[float, float]:
    """This host's whole-model time: as the planner predicts it, and as measured (the sum of
    the profiled segments)."""
    predicted = float(host_kernels(analysed.graph, measured, lm).ms.sum())
    return predicted, sum(s.ms for s in measured.segments)


def value_codecs(problem: PlanProblem) -> PlanProblem:
    """Only codecs whose wire size does not depend on the data (fp32, fp16, int8): what a
    lossless compressor saves depends on the values, and the benchmark's inputs are noise
    (per-cut ratios on real data come from `tierml adapt codecs`)."""
    kept = tuple(c for c in problem.codecs if "+" not in c.name)
    return dataclasses.replace(problem, codecs=kept)


def emulated_tiers(slowdown: float) -> list[EmulatedTier]:
    return [
        EmulatedTier("device", TierKind.DEVICE, slowdown, True),
        EmulatedTier("edge", TierKind.EDGE, EDGE_SLOWDOWN, False),
        EmulatedTier("cloud", TierKind.CLOUD, 1.0, False),
    ]


def emulated_links(mbps: float) -> dict[tuple[str, str], LinkShape]:
    return {
        ("device", "edge"): LinkShape(mbps, mbps, DEVICE_EDGE_RTT_MS),
        ("device", "cloud"): LinkShape(mbps, mbps, DEVICE_CLOUD_RTT_MS),
        ("edge", "cloud"): BACKBONE,
    }


def point_problem(
    an: AnalysedModel,
    measured: Measured,
    lm: LatencyModel,
    codecs: CodecTimings,
    curves: MeasuredCurves | None,
    costs: RuntimeCosts,
    bandwidth_mbps: float,
    slowdown: float,
) -> PlanProblem:
    """The planning problem of one benchmark point: the emulated tiers and links, anchored
    to the model's time measured on this host, with the runtime's measured fixed costs."""
    # With measured exits: at most one point of accuracy lost (the target for
    # exits), else the fastest setting exits everything at once.
    floor = curves.curves.base_accuracy - 0.01 if curves else None
    topo = emulated_topology(
        lm.host_throughput,
        emulated_tiers(slowdown),
        emulated_links(bandwidth_mbps),
        constraints=Constraints(accuracy_floor=floor),
    )
    problem, _ = build_problem(
        an.graph,
        measured,
        lm,
        topo,
        codecs,
        measured_curves=curves.curves if curves else None,
        measured_codecs=curves.codecs if curves else (),
        codec_ms=curves.codec_ms if curves else None,
    )
    problem = anchored_to_measurement(value_codecs(problem), *host_totals(an, measured, lm))
    return with_runtime_costs(problem, costs)


def _split_probe(problem: PlanProblem, analysed: AnalysedModel) -> Candidate:
    """Device | cloud at the middle cut among those that keep ORT's fused kernels whole
    (a cut through a fused Conv+ReLU would measure the lost fusion, not the runtime)."""
    graph = analysed.graph
    _, optimised = optimised_session(analysed.proto, opt_level=OptLevel.EXTENDED, threads=1)
    cuts = enumerate_cuts(graph, keep_together=fusion_groups(graph, optimised))
    part = partitioning_at_positions(graph, [cuts[len(cuts) // 2].position])
    stage_of = tuple(part.stage_of[n.index] for n in graph.compute_nodes)
    lay = next(lay for lay in layouts(problem) if lay.key[1:] and lay.key[1].startswith("cloud"))
    return Candidate(lay, stage_of, Knobs(("fp32", "fp32"), ("fp32",), NO_EXITS, NO_NOISE))


def run_e2e(
    config: E2EConfig, workspace: Workspace, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    points: list[Point] = []
    overheads: list[dict[str, Any]] = []
    progress("measuring the runtime's fixed costs per stage and per hop")
    costs = measure_runtime_costs(workspace)
    for model in config.models:
        label, path = model.label, model.path
        progress(f"{label}: planning {len(config.bandwidths_mbps) * len(config.slowdowns)} points")
        # A grafted multi-exit model is planned as its backbone plus the measured exit curve.
        deployed = analyse_model(path)
        an = analyse_model(model.base) if model.base else deployed
        # Measured now, in the same state of the machine as the runs it predicts.
        measured, lm, codecs = planning_inputs(an, workspace=workspace, fresh=True)
        curves = load_curves(Path(model.curves), cost_graph(an.graph)) if model.curves else None
        binding = ExitBinding.from_curves(read(Path(model.curves))) if model.curves else None
        problems = {}
        entries: dict[tuple[object, ...], Entry] = {}
        for bw in config.bandwidths_mbps:
            for s in config.slowdowns:
                problem = point_problem(an, measured, lm, codecs, curves, costs, bw, s)
                problems[(bw, s)] = problem
                for e in build_portfolio(problem):
                    entries.setdefault(candidate_key(e.candidate), e)
        first = problems[(config.bandwidths_mbps[0], config.slowdowns[0])]
        probe = _split_probe(first, an)
        entries.setdefault(candidate_key(probe), Entry(("split-probe",), probe))
        ids = {k: f"p{i}" for i, k in enumerate(entries)}
        with tempfile.TemporaryDirectory(prefix="tierml-e2e-") as tmp:
            work = Path(tmp)
            slowdowns = {"device": config.slowdowns[0], "edge": EDGE_SLOWDOWN, "cloud": 1.0}
            build_bundle(
                deployed,
                first,
                list(entries.values()),
                slowdowns,
                work / "bundle",
                exits=binding,
                base=an.graph if model.base else None,
            )
            progress(f"{label}: deploying {len(entries)} plans")
            with Deployment(work / "bundle", seed=config.seed, timeout_s=30.0) as dep:
                client = DeviceClient(
                    work / "bundle", dep.addresses, seed=config.seed, timeout_s=30.0
                )
                feeds = model_inputs(model, client.bundle, config.seed)
                rounds = model.rounds or config.rounds
                for (bw, s), problem in problems.items():
                    progress(f"{label}: {bw:g} Mbps, device {s:g}× slower")
                    point = measure_point(client, problem, ids, label, bw, s, feeds, config, rounds)
                    points.append(point)
                pid = ids[candidate_key(probe)]
                overheads.append(
                    measure_split_overhead(client, path, pid, feeds[0], config.overhead_rounds)
                )
                client.close()
    return {**_summary(points, overheads), "runtime_costs": dataclasses.asdict(costs)}


def measure_point(
    client: DeviceClient,
    problem: PlanProblem,
    ids: dict[tuple[object, ...], str],
    label: str,
    bw: float,
    s: float,
    feeds: list[Feeds],
    config: E2EConfig,
    rounds: int,
) -> Point:
    client.set_device_slowdown(s)
    for name, link in client.links.items():
        link.set_shape(emulated_links(bw).get(tuple(name.split("->")), link.shape))  # type: ignore[arg-type]
    result = solve(problem)
    chosen: dict[str, Candidate] = {}
    if result.plan is not None:
        chosen["tierml"] = result.plan.candidate
    for name in STRATEGIES[1:]:
        base = result.baselines.get(name)
        if base is not None:
            chosen[name] = base.candidate
    point = Point(label, bw, s)
    plan_of = {name: ids[candidate_key(c)] for name, c in chosen.items()}
    for name, cand in chosen.items():
        m = evaluate(problem, cand)
        point.predicted_ms[name] = m.latency_ms if m else float("nan")
        point.plans[name] = describe(cand)
    samples: dict[str, list[float]] = {pid: [] for pid in set(plan_of.values())}
    exits: dict[str, int] = dict.fromkeys(samples, 0)
    sent: dict[str, int] = dict.fromkeys(samples, 0)
    rng = np.random.default_rng(config.seed)
    for pid in samples:  # warm-up: sessions, channels, caches
        client.infer(feeds[0], plan=pid)
    for r in range(rounds):
        order = list(samples)
        rng.shuffle(order)
        x = feeds[r % len(feeds)]  # every plan gets the same input in a round
        for pid in order:
            record = client.infer(x, plan=pid)
            samples[pid].append(record.total_ms)
            exits[pid] += record.exit is not None
            sent[pid] += record.bytes_up
    for name, pid in plan_of.items():
        xs = sorted(samples[pid])
        point.measured_p50_ms[name] = statistics.median(xs)
        point.measured_p95_ms[name] = float(np.percentile(xs, 95))
        point.measured_mean_ms[name] = statistics.fmean(xs)
        point.exit_share[name] = exits[pid] / len(xs)
        point.bytes_up_mean[name] = sent[pid] / len(xs)
    for name in ("tierml", "device-only"):
        if name in plan_of:
            point.stream_rps[name] = _stream(client, plan_of[name], feeds[0], config)
    return point


def describe(c: Candidate) -> str:
    """e.g. ``device:10 | edge:7 codecs=int8 exits=max-softmax≥0.9``: nodes per site, the
    codec of each link, and the exit setting when exits are on."""
    counts = [sum(1 for x in c.stage_of if x == k) for k in range(c.layout.size)]
    # An emulated tier's hardware is "this host, slower": the tier name says enough.
    sites = [site.split(":this-host/")[0] for site in c.layout.key]
    parts = [f"{site}:{n}" for site, n in zip(sites, counts, strict=True) if n]
    exits = f" exits={c.knobs.exits}" if c.knobs.exits != NO_EXITS else ""
    return " | ".join(parts) + f" codecs={','.join(c.knobs.codecs) or '-'}" + exits


def _stream(client: DeviceClient, pid: str, feeds: dict[str, Any], config: E2EConfig) -> float:
    """Requests per second with ``stream_clients`` concurrent requests in flight."""
    todo = iter(range(config.stream_requests))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            client.infer(feeds, plan=pid)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(config.stream_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return config.stream_requests / (time.perf_counter() - start)


def _summary(points: Sequence[Point], overheads: Sequence[dict[str, Any]]) -> dict[str, Any]:
    # The planner predicts the expected latency: compare with the measured mean (with exits
    # the distribution is bimodal and its median is either mode).
    apes = [
        abs(p.predicted_ms[k] - p.measured_mean_ms[k]) / p.measured_mean_ms[k]
        for p in points
        for k in p.measured_mean_ms
        if k in p.predicted_ms and np.isfinite(p.predicted_ms[k])
    ]
    checks = []
    for p in points:
        base = {k: v for k, v in p.measured_p50_ms.items() if k != "tierml"}
        if "tierml" not in p.measured_p50_ms or not base:
            continue
        best_base = min(base.values())
        single = min(v for k, v in base.items() if k.endswith("-only"))
        checks.append(
            {
                "model": p.model,
                "bandwidth_mbps": p.bandwidth_mbps,
                "slowdown": p.slowdown,
                "vs_best_baseline": p.measured_p50_ms["tierml"] / best_base,
                "speedup_vs_best_single_tier": single / p.measured_p50_ms["tierml"],
            }
        )
    by_model: dict[str, list[float]] = {}
    for p in points:
        for k in p.measured_mean_ms:
            if k in p.predicted_ms and np.isfinite(p.predicted_ms[k]):
                ape = abs(p.predicted_ms[k] - p.measured_mean_ms[k]) / p.measured_mean_ms[k]
                by_model.setdefault(p.model, []).append(ape)
    return {
        "points": [p.to_dict() for p in points],
        "prediction_median_ape_by_model": {m: float(np.median(v)) for m, v in by_model.items()},
        "overhead": list(overheads),
        "overhead_ratio": max((o["ratio"] for o in overheads), default=float("nan")),
        "overhead_ratio_over_loopback": max(
            (o["ratio_over_loopback"] for o in overheads), default=float("nan")
        ),
        "prediction_median_ape": float(np.median(apes)) if apes else float("nan"),
        "checks": checks,
        "link_emulation": EMULATION,
        "tier_emulation": TIER_EMULATION,
        "onnxruntime": ort.__version__,
    }
