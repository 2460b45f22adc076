"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tierml.cli.render import OutputFormat

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
    from tierml.profile.analysis import parse_shape_options

    return parse_shape_options(options or [])
