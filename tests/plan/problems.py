"""Planning problems built by hand: random DAGs and chains with every knob, for the oracle."""

from __future__ import annotations

import numpy as np

from tierml.core.tiers import TierKind
from tierml.plan.problem import (
    Billing,
    Codec,
    Constraints,
    CostGraph,
    ExitOption,
    ExitPoint,
    Hop,
    NoiseOption,
    Objective,
    PlanProblem,
    PlanTensor,
    PlanTier,
    Site,
    Variant,
    Workload,
)

VARIANTS = (Variant("fp32", 0.0, 1.0), Variant("int8", 0.01, 0.25))
CODECS = (Codec("fp32", 1.0, 0.0), Codec("fp16", 0.5, 0.001), Codec("int8", 0.25, 0.004))
NOISE = (NoiseOption("none", 0.0, 1.0), NoiseOption("sigma-0.5", 0.01, 0.4))


def random_graph(rng: np.random.Generator, n: int, *, chain: bool = False) -> CostGraph:
    tensors = [PlanTensor("input", int(rng.integers(1000, 50_000)), -1, (0,), False, 1.0)]
    for v in range(n):
        if v == n - 1:
            readers: tuple[int, ...] = ()
        elif chain:
            readers = (v + 1,)
        else:
            extra = rng.integers(v + 1, n, size=int(rng.integers(0, 3)))
            readers = tuple(sorted({v + 1, *(int(c) for c in extra)}))
        depth = (v + 1) / n
        tensors.append(
            PlanTensor(
                f"t{v}",
                int(rng.integers(100, 80_000)),
                v,
                readers,
                v == n - 1,
                round(float(0.9 * (1 - depth)), 1),
            )
        )
    return CostGraph(
        name="random",
        nodes=tuple(f"n{v}" for v in range(n)),
        macs=tuple(int(m) for m in rng.integers(1_000, 1_000_000, size=n)),
        param_bytes=tuple(int(b) for b in rng.integers(1_000, 400_000, size=n)),
        tensors=tuple(tensors),
    )


def _site(
    rng: np.random.Generator,
    name: str,
    tier: str,
    n: int,
    speed: float,
    exits: int,
    billing: Billing = Billing.OWNED,
    **extra: object,
) -> Site:
    base = rng.uniform(0.1, 3.0, size=n) / speed
    return Site(
        name=name,
        tier=tier,
        billing=billing,
        node_ms={"fp32": base, "int8": base * 0.5},
        run_ms=0.05 / speed,
        boundary_ms_per_mb=0.02,
        encode_ms_per_mb={
            "fp32": 0.0,
            "fp16": 0.3 / speed,
            "int8": 0.6 / speed,
            "bottleneck": 2.0 / speed,
        },
        decode_ms_per_mb={
            "fp32": 0.0,
            "fp16": 0.3 / speed,
            "int8": 0.5 / speed,
            "bottleneck": 2.0 / speed,
        },
        exit_head_ms=tuple(0.05 / speed for _ in range(exits)),
        memory_mb=extra.pop("memory_mb", 4096.0),  # type: ignore[arg-type]
        peak_gflops=10 * speed,
        **extra,  # type: ignore[arg-type]
    )


def random_problem(
    seed: int,
    n: int = 6,
    *,
    tiers: int = 3,
    chain: bool = False,
    exits: bool = True,
    knobs: bool = True,
    faas: bool = True,
    hybrid: bool = False,
    bottleneck: str | None = None,
    objective: Objective | None = None,
    constraints: Constraints | None = None,
) -> PlanProblem:
    rng = np.random.default_rng(seed)
    graph = random_graph(rng, n, chain=chain)
    exit_points: tuple[ExitPoint, ...] = ()
    options: tuple[ExitOption, ...] = ()
    if exits and n >= 3:
        tap = int(rng.integers(0, n - 1)) if chain else 0
        exit_points = (ExitPoint("exit0", tap, 40),)
        options = (
            ExitOption("t0.9", (0.3,), 0.97),
            ExitOption("t0.7", (0.6,), 0.95),
        )
    k = len(exit_points)
    device = _site(rng, "phone", "phone", n, 1.0, k, power_active_w=3.0, power_idle_w=0.5)
    edge = _site(rng, "edge", "edge", n, 4.0, k)
    cloud_sites = [
        _site(rng, "vm", "cloud", n, 10.0, k, Billing.VM, usd_per_hour=0.17),
    ]
    if faas:
        cloud_sites.append(
            _site(
                rng,
                "faas",
                "cloud",
                n,
                6.0,
                k,
                Billing.FAAS,
                usd_per_gb_s=1.6e-5,
                usd_per_request=2e-7,
                faas_memory_mb=2048,
                cold_start_ms=250.0,
            )
        )
    all_tiers = [
        PlanTier("phone", TierKind.DEVICE, True, (device,)),
        PlanTier("edge", TierKind.EDGE, True, (edge,)),
        PlanTier(
            "cloud", TierKind.CLOUD, False, tuple(cloud_sites),
            Hop("in-cloud", 10_000.0, 10_000.0, 1.0) if hybrid else None,
        ),
    ][:tiers]  # fmt: skip
    links = {
        ("phone", "edge"): Hop("wifi", 20.0, 40.0, 8.0, radio_mj_per_mb_up=100.0),
        ("edge", "cloud"): Hop("wan", 100.0, 100.0, 30.0),
        ("phone", "cloud"): Hop("lte", 5.0, 20.0, 60.0, radio_mj_per_mb_up=300.0),
    }
    codecs = CODECS if knobs else CODECS[:1]
    if bottleneck is not None:  # a learned bottleneck trained for one cut tensor
        codecs = (*codecs, Codec("bottleneck", 0.02, 0.002, at_tensor=bottleneck))
    return PlanProblem(
        graph=graph,
        tiers=tuple(all_tiers),
        links={k: v for k, v in links.items() if {k[0], k[1]} <= {t.name for t in all_tiers}},
        base_accuracy=0.98,
        variants=VARIANTS if knobs else VARIANTS[:1],
        codecs=codecs,
        exits=exit_points,
        exit_options=options,
        noise=NOISE if knobs else NOISE[:1],
        objective=objective or Objective(),
        constraints=constraints or Constraints(),
        workload=Workload(requests_per_second=2.0),
    )
