"""Mutated OIP requests against real tier processes: every answer is typed, and the tiers
go on serving valid requests exactly as before (benchmarks/fuzz_oip.py runs 10,000)."""

from __future__ import annotations

from tierml.experiments.oip_fuzz import TierPorts, run_fuzz
from tierml.experiments.oip_mutations import build_seeds
from tierml.runtime.deployment import Deployment

CASES = 300


def test_three_hundred_mutated_requests_get_typed_answers_and_serving_goes_on(emulated):
    seeds = build_seeds(emulated.bundle, emulated.root, seed=0)
    assert {s.tier for s in seeds} == {"edge", "cloud"}
    with Deployment(emulated.root, timeout_s=5.0) as dep:
        ports = TierPorts(dep.addresses)
        try:
            report = run_fuzz(
                ports,
                seeds,
                count=CASES,
                seconds=120.0,
                run_seed=1,
                alive=lambda: all(p.poll() is None for p in dep.procs.values()),
            )
        finally:
            ports.close()
    assert report.cases == CASES, report.stopped
    assert report.classes["untyped"] == 0, report.untyped
    assert report.classes["ok"] > 0 and report.classes["coded"] > CASES // 2
    assert report.answered_after and report.alive_after
