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
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import onnx

from fuzz_corpus import KINDS, Mutant, Seed, mutate, wheel_seeds, zoo_seeds
from model_mutations import elem_types
from model_rewrites import REWRITES

CLASSES = ("accepted", "coded", "untyped", "crash", "hang")
STAGES = ("load", "analyse", "cuts", "split")
# Seed families are drawn with these weights, whatever their sizes: the wheel holds ~120
# one-node operator tests beside 9 real topologies.
FAMILY_WEIGHTS = {"real": 0.45, "node": 0.3, "zoo": 0.25}
TRACEBACK_LINES = 12
PROGRESS_EVERY = 1000  # cases between progress lines on stderr


@dataclass
class Outcome:
    index: int
    seed: str
    kinds: tuple[str, ...]
    detail: str
    cls: str
    stage: str = ""  # the stage that failed, or the last one run
    code: str = ""  # TiermlError code
    error: str = ""  # exception type and first line of its message
    traceback: str = ""
    origin: str = ""  # the innermost tierml frame the exception passed through
    seconds: float = 0.0

    @property
    def signature(self) -> str:
        """What tells two untyped failures apart: stage, exception type, where raised."""
        return f"{self.stage}: {self.error.split(':')[0]} from {self.origin}"


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
    from tierml.core.errors import TiermlError
    from tierml.graph import enumerate_cuts, load_model
    from tierml.profile.analysis import analyse_model
    from tierml.runtime.partitions import split_model

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


# ---------------------------------------------------------------- workers


def _worker_main(conn: Connection, memory_mb: int) -> None:
    """Run cases sent over ``conn`` until it closes; ORT's log lines go to /dev/null."""
    import resource

    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    workdir = Path(tempfile.mkdtemp(prefix="tierml-fuzz."))
    try:
        while True:
            try:
                index, mutant = conn.recv()
            except EOFError:
                return
            # A plain dict: the parent may not import this module under the same name.
            conn.send(asdict(run_case(index, mutant, workdir)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    case: tuple[int, Mutant] | None = None
    deadline: float = 0.0


class WorkerPool:
    """Worker processes each running one case at a time; a dead or stuck one is replaced."""

    def __init__(self, size: int, timeout: float, memory_mb: int) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.context = multiprocessing.get_context("spawn")
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main, args=(child, self.memory_mb), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def idle(self) -> _Worker | None:
        return next((w for w in self.workers if w.case is None), None)

    def submit(self, worker: _Worker, index: int, mutant: Mutant) -> None:
        worker.case = (index, mutant)
        worker.deadline = time.monotonic() + self.timeout
        worker.conn.send((index, mutant))

    def collect(self) -> list[Outcome]:
        """Wait for at least one busy worker to finish, die or overrun its time limit."""
        busy = [w for w in self.workers if w.case is not None]
        if not busy:
            return []
        first_deadline = min(w.deadline for w in busy)
        ready = wait([w.conn for w in busy], timeout=max(0.0, first_deadline - time.monotonic()))
        done: list[Outcome] = []
        for w in busy:
            assert w.case is not None
            index, mutant = w.case
            if w.conn in ready:
                try:
                    done.append(Outcome(**w.conn.recv()))
                    w.case = None
                    continue
                except (EOFError, ConnectionResetError):
                    w.process.join(5)
                    cls, error = "crash", f"worker exited with code {w.process.exitcode}"
            elif time.monotonic() >= w.deadline:
                cls, error = "hang", f"no answer within {self.timeout:g} s"
            else:
                continue
            done.append(
                Outcome(index, mutant.seed, mutant.kinds, mutant.detail, cls, "", "", error)
            )
            self._replace(w)
        return done

    def _replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._start()

    def close(self) -> None:
        for w in self.workers:
            w.conn.close()
        for w in self.workers:
            w.process.join(10)
            if w.process.is_alive():
                w.process.kill()


# ---------------------------------------------------------------- running and reporting


@dataclass
class Report:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    classes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    untyped: dict[str, Outcome] = field(default_factory=dict)  # first example per signature
    untyped_counts: Counter[str] = field(default_factory=Counter)
    # First message per (mutation kind, code): what each kind of damage is refused with.
    coded: dict[str, str] = field(default_factory=dict)
    # Models changed by valid rewrites only, yet refused: first message per kind and code.
    refused_rewrites: dict[str, str] = field(default_factory=dict)
    refused_rewrite_counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.cases += 1
        self.classes[outcome.cls] += 1
        if outcome.code:
            self.codes[outcome.code] += 1
        if outcome.stage:
            self.stages[f"{outcome.stage} {outcome.cls}"] += 1
        for kind in outcome.kinds:
            self.by_kind.setdefault(kind, Counter())[outcome.cls] += 1
            if outcome.code:
                self.coded.setdefault(f"{kind} {outcome.code}", outcome.error)
        if outcome.code and all(k in REWRITES for k in outcome.kinds):
            key = f"{'+'.join(outcome.kinds)} {outcome.code}"
            self.refused_rewrite_counts[key] += 1
            self.refused_rewrites.setdefault(key, outcome.error)
        if outcome.cls in ("untyped", "crash", "hang"):
            signature = outcome.signature if outcome.cls == "untyped" else outcome.cls
            self.untyped_counts[signature] += 1
            self.untyped.setdefault(signature, outcome)

    @property
    def failures(self) -> int:
        return sum(self.classes[c] for c in ("untyped", "crash", "hang"))

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "cases": self.cases,
            "seconds": round(self.seconds, 1),
            "classes": {c: self.classes[c] for c in CLASSES},
            "codes": dict(self.codes.most_common()),
            "stages": dict(self.stages.most_common()),
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
            "coded_examples": dict(sorted(self.coded.items())),
            "refused_rewrites": {
                k: {"count": n, "first": self.refused_rewrites[k]}
                for k, n in self.refused_rewrite_counts.most_common()
            },
            "untyped": [
                {**asdict(o), "signature": s, "count": self.untyped_counts[s]}
                for s, o in self.untyped.items()
            ],
        }

    def print(self) -> None:
        rate = self.cases / self.seconds if self.seconds else 0.0
        print(f"{self.cases} cases in {self.seconds:.0f} s ({rate:.1f}/s), seed {self.seed}")
        print("classes: " + ", ".join(f"{c} {self.classes[c]}" for c in CLASSES))
        print("codes:   " + ", ".join(f"{c} {n}" for c, n in self.codes.most_common()))
        print("stages:  " + ", ".join(f"{s} {n}" for s, n in self.stages.most_common()))
        print(f"\n{'mutation':<26}" + "".join(f"{c:>10}" for c in CLASSES))
        for kind in sorted(self.by_kind):
            row = self.by_kind[kind]
            print(f"{kind:<26}" + "".join(f"{row[c]:>10}" for c in CLASSES))
        if self.refused_rewrite_counts:
            print("\nvalid rewrites refused (first message):")
        for key, n in self.refused_rewrite_counts.most_common():
            print(f"  [{n}×] {key}: {self.refused_rewrites[key][:160]}")
        for signature, o in self.untyped.items():
            print(f"\n[{self.untyped_counts[signature]}×] {signature}")
            print(f"  case {o.index}: {o.seed}, {'+'.join(o.kinds)}: {o.detail}")
            print(f"  {o.error}")
            tail = o.traceback.strip().splitlines()[-TRACEBACK_LINES:]
            print("".join(f"    {line}\n" for line in tail), end="")


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
    pool = WorkerPool(workers, timeout, memory_mb)
    next_index = 0
    try:
        while True:
            stopped = seconds is not None and time.perf_counter() - start > seconds
            while next_index < count and not stopped and (w := pool.idle()) is not None:
                pool.submit(w, next_index, corpus.case(next_index))
                next_index += 1
            if all(w.case is None for w in pool.workers):
                break
            for outcome in pool.collect():
                report.add(outcome)
                if report.cases % PROGRESS_EVERY == 0:
                    elapsed = time.perf_counter() - start
                    print(
                        f"{report.cases} cases, {elapsed:.0f} s, {report.failures} failures",
                        file=sys.stderr,
                    )
                if save_failures is not None and outcome.cls not in ("accepted", "coded"):
                    _save(save_failures, corpus.case(outcome.index), outcome)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        for o in [*report.untyped.values()] or []:
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
