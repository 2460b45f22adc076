"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierml.cli.render import OutputFormat
from tierml.core.errors import InputDataError

if TYPE_CHECKING:  # the API loads onnx and ONNX Runtime: only when a command runs
    from tierml.api.model_input import ModelInput
    from tierml.core.workspace import Workspace

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


def model_input(
    model: Path, batch: int | None, shape: list[str] | None, inputs: Path | None = None
) -> ModelInput:
    """The model options every model command takes, as the API's specification."""
    from tierml.api.model_input import ModelInput

    return ModelInput(model, batch=batch, shapes=shapes_of(shape), inputs=inputs)


def workspace(registry_url: str | None = None) -> Workspace:
    """The command's workspace, from the environment as it is now (``--db`` wins over its
    variable); built per command, so commands run in one process each see their own."""
    from tierml.api.workspace import open_workspace

    return open_workspace(registry_url=registry_url)
