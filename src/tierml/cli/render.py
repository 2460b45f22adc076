"""Turn library results into JSON or rich tables. No library logic here."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

_progress = {"quiet": False}


def set_quiet(value: bool) -> None:
    """``tierml --quiet``: no progress displays; results are still printed."""
    _progress["quiet"] = value


def quiet() -> bool:
    return _progress["quiet"]


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while a long step runs; only on a terminal
    (output piped or captured stays clean) and never under ``--quiet``."""
    err = Console(stderr=True)
    if quiet() or not err.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        bar.add_task(message, total=None)
        yield


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: such floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_finite(data), indent=2) + "\n")


def console() -> Console:
    return Console(soft_wrap=False, width=max(Console().width, 120))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < 2 else "right", overflow="fold")
    for r in rows:
        t.add_row(*[str(v) for v in r])
    return t


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def human_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def shape_text(shape: Sequence[int] | None) -> str:
    return "?" if shape is None else "×".join(str(d) for d in shape) or "scalar"
