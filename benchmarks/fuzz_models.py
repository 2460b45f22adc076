"""Fuzz tierml's model path with structurally mutated real ONNX models.

Every case is a real model (the onnx wheel's topologies and operator tests, a few small zoo
exports) edited by ``fuzz_corpus`` (damage from ``model_mutations``, valid rewrites from
``model_rewrites``, or damaged bytes), written to a file and run through what
``tierml inspect / cuts / split`` do: ``load_model``, ``analyse_model``, ``enumerate_cuts``
and ``split_model`` at one valid cut. Each outcome is one of

- ``accepted``: every stage passed;
- ``coded``: a ``TiermlError`` (its code is recorded): the model was refused with a reason;
- ``untyped``: any other exception (a bug: the user would see a traceback);
- ``crash`` / ``hang``: the worker process died, or overran the per-input time limit.

Cases run in a worker subprocess, restarted after a crash or a hang, so a pathological
mutant cannot take the run down. Case ``i`` is a pure function of ``--seed`` and ``i``.

    .venv/bin/python benchmarks/fuzz_models.py [--count 10000] [--seconds S] [--timeout 20]
        [--seed 0] [--workers 1] [--no-zoo] [--case I ...] [--save-failures DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import onnx

from fuzz_corpus import KINDS, Mutant, Seed, mutate, wheel_seeds, zoo_seeds
from fuzz_report import FAILURES, Outcome, Report
from fuzz_workers import WorkerPool
from model_mutations import elem_types
from tierml.core.errors import TiermlError
from tierml.graph import enumerate_cuts, load_model
from tierml.profile.analysis import analyse_model
from tierml.runtime.partitions import split_model

STAGES = ("load", "analyse", "cuts", "split")
# Seed families are drawn with these weights, whatever their sizes: the wheel holds ~120
# one-node operator tests beside 9 real topologies.
FAMILY_WEIGHTS = {"real": 0.45, "node": 0.3, "zoo": 0.25}
PROGRESS_EVERY = 1000  # cases between progress lines on stderr


# ---------------------------------------------------------------- cases


class Corpus:
    """The seeds, parsed once, and the deterministic case generator over them."""

    def __init__(self, seeds: Sequence[Seed], seed: int = 0, originals: bool = True) -> None:
        self.seeds = list(seeds)
        self.seed = seed
        self.originals = originals
        self.families: dict[str, list[Seed]] = {}
        for s in self.seeds:
            self.families.setdefault(s.family, []).append(s)
        self._parsed: dict[str, tuple[onnx.ModelProto, dict[str, int]]] = {}

    def case(self, index: int) -> Mutant:
        """Case ``index``: the unmutated seeds first (when ``originals``), then mutants."""
        if self.originals and index < len(self.seeds):
            s = self.seeds[index]
            return Mutant(s.name, ("original",), "unmutated", s.data)
        rng = random.Random(f"{self.seed}:{index}")
        families = sorted(self.families)
        family = rng.choices(families, weights=[FAMILY_WEIGHTS[f] for f in families])[0]
        s = rng.choice(self.families[family])
        if s.name not in self._parsed:
            model = onnx.load_from_string(s.data)
            self._parsed[s.name] = model, elem_types(model)
        model, types = self._parsed[s.name]
        return mutate(s, model, types, rng)


def run_case(index: int, mutant: Mutant, workdir: Path) -> Outcome:
    """Write the mutant (and its side files) into ``workdir`` and run every stage on it."""
    case_dir = Path(tempfile.mkdtemp(prefix=f"case{index}.", dir=workdir))
    path = case_dir / "model.onnx"
    path.write_bytes(mutant.data)
    for name, data in mutant.sidecars.items():
        (case_dir / name).write_bytes(data)
    outcome = Outcome(index, mutant.seed, mutant.kinds, mutant.detail, "accepted")
    stage = STAGES[0]
    start = time.perf_counter()
    try:
        # Warnings count as failures: the test suite runs with -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_model(path)
            stage = "analyse"
            analysed = analyse_model(path)
            stage = "cuts"
            cuts = enumerate_cuts(analysed.graph)
            if cuts:
                stage = "split"
                split_model(path, [f"@{len(cuts) // 2}"], case_dir / "parts")
        outcome.stage = stage
    except TiermlError as exc:
        outcome.cls, outcome.stage, outcome.code = "coded", stage, exc.code
        outcome.error = f"{exc.code}: {exc.message}"[:300]
    except Exception as exc:  # the fuzzer's job: record whatever escaped
        outcome.cls, outcome.stage = "untyped", stage
        text = str(exc).strip().splitlines()
        outcome.error = f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
        outcome.traceback = "".join(traceback.format_exception(exc))[-3000:]
        outcome.origin = _origin(exc)
    finally:
        outcome.seconds = time.perf_counter() - start
        shutil.rmtree(case_dir, ignore_errors=True)
    return outcome


def _origin(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}tierml{os.sep}" in f.filename] or frames
    last = ours[-1]
    return f"{last.filename.rsplit(os.sep + 'tierml' + os.sep, 1)[-1]}:{last.lineno} {last.name}"


def run_job(job: tuple[int, Mutant], workdir: Path) -> dict[str, object]:
    """``run_case`` in a worker. A plain dict crosses back: the parent may know this module
    under another name (``__main__``)."""
    return asdict(run_case(*job, workdir))


# ---------------------------------------------------------------- running


def load_seeds(*, zoo: bool) -> list[Seed]:
    seeds = wheel_seeds()
    if zoo:
        seeds += zoo_seeds()
    return seeds


def fuzz_in_process(
    corpus: Corpus, indices: Sequence[int], workdir: Path, seconds: float | None = None
) -> Report:
    """Run cases in this process (no time limit per case): for tests and reproducing."""
    report = Report(corpus.seed)
    start = time.perf_counter()
    for index in indices:
        if seconds is not None and time.perf_counter() - start > seconds:
            break
        report.add(run_case(index, corpus.case(index), workdir))
    report.seconds = time.perf_counter() - start
    return report


def fuzz(
    corpus: Corpus,
    count: int,
    *,
    seconds: float | None,
    timeout: float,
    workers: int,
    memory_mb: int,
    save_failures: Path | None = None,
) -> Report:
    report = Report(corpus.seed)
    start = time.perf_counter()
    pool = WorkerPool(run_job, workers, timeout, memory_mb)
    next_index = 0
    try:
        while True:
            stopped = seconds is not None and time.perf_counter() - start > seconds
            while next_index < count and not stopped and (w := pool.idle()) is not None:
                pool.submit(w, (next_index, corpus.case(next_index)))
                next_index += 1
            if not pool.busy:
                break
            for finished in pool.collect():
                index, mutant = finished.job
                if finished.failure:
                    outcome = Outcome(
                        index, mutant.seed, mutant.kinds, mutant.detail, finished.failure
                    )
                    outcome.error = finished.error
                else:
                    outcome = Outcome(**finished.result)
                report.add(outcome)
                if report.cases % PROGRESS_EVERY == 0:
                    elapsed = time.perf_counter() - start
                    print(
                        f"{report.cases} cases, {elapsed:.0f} s, {report.failures} failures",
                        file=sys.stderr,
                    )
                if save_failures is not None and outcome.cls in FAILURES:
                    _save(save_failures, mutant, outcome)
    finally:
        pool.close()
    report.seconds = time.perf_counter() - start
    return report


def _save(directory: Path, mutant: Mutant, outcome: Outcome) -> None:
    case_dir = directory / f"case{outcome.index}"
    case_dir.mkdir(parents=True, exist_ok=True)
    (case_dir / "model.onnx").write_bytes(mutant.data)
    for name, data in mutant.sidecars.items():
        (case_dir / name).write_bytes(data)
    (case_dir / "outcome.json").write_text(json.dumps(asdict(outcome), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuzz_models.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="cases to run")
    parser.add_argument("--seconds", type=float, help="stop starting cases after this long")
    parser.add_argument("--timeout", type=float, default=20.0, help="per-case limit (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address space per worker")
    parser.add_argument("--no-zoo", action="store_true", help="only the onnx wheel's models")
    parser.add_argument("--case", type=int, action="append", help="run these cases in-process")
    parser.add_argument("--save-failures", type=Path, help="write failing mutants here")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    corpus = Corpus(load_seeds(zoo=not args.no_zoo), seed=args.seed)
    if args.case:
        with tempfile.TemporaryDirectory(prefix="tierml-fuzz.") as tmp:
            report = fuzz_in_process(corpus, args.case, Path(tmp))
        for o in report.failures_seen.values():
            print(o.traceback)
    else:
        report = fuzz(
            corpus,
            args.count,
            seconds=args.seconds,
            timeout=args.timeout,
            workers=args.workers,
            memory_mb=args.memory_mb,
            save_failures=args.save_failures,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"mutation kinds: {len(KINDS)}; seeds: {len(corpus.seeds)}")
        report.print()
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
