"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierml.cli.render import OutputFormat
from tierml.core.errors import InputDataError

ModelArg = Annotated[Path, typer.Argument(help="Path to an ONNX model.", show_default=False)]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]
BatchOpt = Annotated[
    int | None,
    typer.Option("--batch", min=1, help="Batch size for a dynamic leading dimension [default: 1]."),
]
ShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shape",
        help="Fix an input's dynamic dims: NAME=d0,d1,... (repeatable).",
        show_default=False,
    ),
]
InputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--inputs", help="Real input arrays (.npz keyed by input name).", show_default=False
    ),
]

ThreadsOpt = Annotated[
    int, typer.Option("--threads", min=1, help="ONNX Runtime intra-op threads (pinned count).")
]
CatalogOpt = Annotated[
    list[Path] | None,
    typer.Option("--catalog", help="Extra catalog TOML file (repeatable).", show_default=False),
]


def shapes_of(options: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1,3,224,224", ...]`` → {"x": (1, 3, 224, 224)}; InputDataError when malformed."""
    shapes: dict[str, tuple[int, ...]] = {}
    for option in options or []:
        name, sep, dims = option.rpartition("=")
        try:
            values = tuple(int(d) for d in dims.split(",")) if sep and name else None
        except ValueError:
            values = None
        if not values:
            raise InputDataError(
                f"--shape '{option}' is not NAME=d0,d1,...", hint="Example: --shape input_ids=1,128"
            )
        shapes[name] = values
    return shapes
