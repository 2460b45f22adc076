"""A documentation file generated from the code it documents: write it, or fail when stale.

The CLI reference and the topology reference are rendered from the command definitions
and the topology schema, so the docs cannot drift from the code. Each generator's
``python -m MODULE`` goes through :func:`run`:

- ``--write`` (re)writes the file;
- ``--check`` exits 1 with one line naming the stale file and the command that fixes it;
- no flag prints the text.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# src/tierml/generated_doc.py → the source checkout that holds docs/.
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GeneratedDoc:
    relative_path: str  # inside the repository, e.g. "docs/cli.md"
    module: str  # the generator, e.g. "tierml.cli.reference"
    render: Callable[[], str]
    root: Path = REPOSITORY

    @property
    def path(self) -> Path:
        return self.root / self.relative_path

    @property
    def write_command(self) -> str:
        return f"python -m {self.module} --write"

    def stale_message(self) -> str | None:
        """None when the file on disk equals the rendering, else the one-line complaint."""
        try:
            current = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current == self.render():
            return None
        state = "is missing" if current is None else "is stale"
        return f"{self.relative_path} {state}: run `{self.write_command}`"


def run(doc: GeneratedDoc, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {doc.module}", description=f"Render {doc.relative_path}."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"(re)write {doc.relative_path}")
    action.add_argument(
        "--check", action="store_true", help=f"exit 1 when {doc.relative_path} is stale"
    )
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(doc.render())
        return 0
    if not doc.path.parent.is_dir():
        # An installed package has no docs/ beside it: only a source checkout does.
        sys.stderr.write(f"{doc.path.parent} not found: run this from a source checkout\n")
        return 2
    if args.check:
        message = doc.stale_message()
        if message is not None:
            sys.stderr.write(message + "\n")
            return 1
        return 0
    doc.path.write_text(doc.render(), encoding="utf-8")
    sys.stdout.write(f"wrote {doc.relative_path}\n")
    return 0
