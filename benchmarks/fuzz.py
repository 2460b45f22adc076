"""Run tierml's fuzzers: mutated ONNX models through the analysis and split path
(``fuzz_models.py``), mutated Open Inference Protocol requests against tier processes
(``fuzz_oip.py``), or both.

    .venv/bin/python benchmarks/fuzz.py models|requests|all [--count N] [--json] [...]

With one target, every further option goes to that fuzzer (``models --help`` lists its
own). With ``all``, only the options both take (``--count``, ``--seconds``, ``--seed``,
``--json``) are accepted, and go to each; ``--json`` then prints one object keyed by target.
Exit status 1 when either fuzzer found an untyped failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODULES = {"models": "fuzz_models", "requests": "fuzz_oip"}


def run(target: str, argv: Sequence[str]) -> int:
    """The target fuzzer's ``main`` on ``argv``. Imported only when asked, so ``models``
    runs whatever state the request fuzzer is in."""
    main = importlib.import_module(MODULES[target]).main
    if inspect.signature(main).parameters:
        return int(main(list(argv)))
    saved = sys.argv
    sys.argv = [f"{MODULES[target]}.py", *argv]  # a main() that reads sys.argv itself
    try:
        return int(main())
    finally:
        sys.argv = saved


def _common_options(options: argparse.Namespace) -> list[str]:
    argv = []
    for name in ("count", "seconds", "seed"):
        value = getattr(options, name)
        if value is not None:
            argv += [f"--{name}", str(value)]
    return argv + (["--json"] if options.json else [])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in MODULES:
        return run(args[0], args[1:])  # --help included: the fuzzer's own
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=[*MODULES, "all"])
    parser.add_argument("--count", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(args)
    common = _common_options(options)
    if not options.json:
        return max(run(target, common) for target in MODULES)
    documents: dict[str, object] = {}
    status = 0
    for target in MODULES:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = max(status, run(target, common))
        documents[target] = json.loads(printed.getvalue())
    print(json.dumps(documents, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
