"""The model fuzzer's outcomes and their tally: per class, code, stage and mutation kind,
the first example of every distinct untyped failure, and valid rewrites that were refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from model_rewrites import REWRITES

CLASSES = ("accepted", "coded", "untyped", "crash", "hang")
FAILURES = ("untyped", "crash", "hang")
TRACEBACK_LINES = 12  # of each untyped failure's first example, in the printed report


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
        if self.cls != "untyped":
            return self.cls
        return f"{self.stage}: {self.error.split(':')[0]} from {self.origin}"


@dataclass
class Report:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    classes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)  # "stage class": the stage reached
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    failures_seen: dict[str, Outcome] = field(default_factory=dict)  # first per signature
    failure_counts: Counter[str] = field(default_factory=Counter)
    # First message per (mutation kind, code): what each kind of damage is refused with.
    coded: dict[str, str] = field(default_factory=dict)
    # Models changed by valid rewrites only, yet refused: first case per kinds and code.
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
            self.refused_rewrites.setdefault(key, f"case {outcome.index}: {outcome.error}")
        if outcome.cls in FAILURES:
            self.failure_counts[outcome.signature] += 1
            self.failures_seen.setdefault(outcome.signature, outcome)

    @property
    def failures(self) -> int:
        return sum(self.classes[c] for c in FAILURES)

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
            "failures": [
                {**asdict(o), "signature": s, "count": self.failure_counts[s]}
                for s, o in self.failures_seen.items()
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
            print("\nvalid rewrites refused (first case):")
        for key, n in self.refused_rewrite_counts.most_common():
            print(f"  [{n}×] {key}: {self.refused_rewrites[key][:200]}")
        for signature, o in self.failures_seen.items():
            print(f"\n[{self.failure_counts[signature]}×] {signature}")
            print(f"  case {o.index}: {o.seed}, {'+'.join(o.kinds)}: {o.detail}")
            print(f"  {o.error}")
            tail = o.traceback.strip().splitlines()[-TRACEBACK_LINES:]
            print("".join(f"    {line}\n" for line in tail), end="")
