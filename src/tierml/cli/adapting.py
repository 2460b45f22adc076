"""`tierml adapt …` and `tierml privacy`: train, adapt and measure a model on real data.

Each command makes one call to :mod:`tierml.api.adapting` (torch is imported only there,
by the actions that train), which validates everything before training and writes an
artifact plus the model's curves file (``MODEL.curves.json`` unless --profile says
otherwise). The commands that load a model take --batch / --shape / --inputs, as every
model command does: an image input of any height and width is adapted at the size given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierml.cli.options import (
    BatchOpt,
    FormatOpt,
    InputsOpt,
    ModelArg,
    ShapeOpt,
    model_input,
    workspace,
)
from tierml.cli.render import OutputFormat, console, print_json, table, working

if TYPE_CHECKING:
    from tierml.api.adapting import AdaptationReport, TrainReport

adapt_app = typer.Typer(
    help="Adapt a model for split deployment: exits, codecs, a bottleneck (needs torch).",
    no_args_is_help=True,
)

DataOpt = Annotated[
    str, typer.Option("--data", help="mnist5k, digits, or an .npz with arrays x and labels.")
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--profile", help="Curves file to update [default: MODEL.curves.json].", show_default=False
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split and the training.")]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit", min=10, help="Use only N samples (a fixed random subset).", show_default=False
    ),
]
EpochsOpt = Annotated[
    int | None, typer.Option("--epochs", min=1, help="Training epochs.", show_default=False)
]
CutOpt = Annotated[str, typer.Option("--cut", help="A single-tensor cut: tensor name or @N.")]
RegisterOpt = Annotated[
    str | None,
    typer.Option(
        "--register",
        metavar="NAME",
        help="Also register the result in the model registry under model NAME.",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Registry database URL, with --register (default: TIERML_REGISTRY_URL, else "
        "SQLite under TIERML_HOME).",
        show_default=False,
    ),
]


@adapt_app.command("train")
def train(
    arch: Annotated[str, typer.Argument(help="small-cnn, mobilenet or vgg-style.")],
    data: DataOpt = "mnist5k",
    out: Annotated[Path | None, typer.Option("--out", help="Also copy the .onnx here.")] = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = None,
    limit: LimitOpt = None,
    register: RegisterOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Train a model of the family on real data (cached by configuration), export ONNX;
    --register NAME adds it as the next version of NAME (held-out data as its eval set).

    Example: tierml adapt train small-cnn --data mnist5k --out cnn.onnx --register digits
    """
    from tierml.api.adapting import TrainOptions
    from tierml.api.adapting import train as train_model

    options = TrainOptions(data, out, seed, epochs, limit, register)
    with working(f"training {arch} on {data}"):
        report = train_model(workspace(db), arch, options)
    if fmt is OutputFormat.JSON:
        print_json(report.to_dict())
        return
    t = report.trained
    console().print(
        f"{arch} on {data}: held-out accuracy {t.held_out_accuracy:.4f} → {t.path}"
        + (" (cached)" if t.cached else "")
        + _version_line(report)
    )


@adapt_app.command("exits")
def exits(
    model: ModelArg,
    tap: Annotated[list[str], typer.Option("--tap", help="Exit tensor (name or @N); repeat.")],
    data: DataOpt = "mnist5k",
    out: Annotated[Path | None, typer.Option("--out", help="Multi-exit .onnx to write.")] = None,
    profile: ProfileOpt = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = None,
    limit: LimitOpt = None,
    joint: Annotated[
        bool,
        typer.Option(
            "--joint", help="Then fine-tune the model with the heads (Shallow-Deep Networks loss)."
        ),
    ] = False,
    register: RegisterOpt = None,
    db: DbOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Train early-exit heads on the frozen model (--joint: then fine-tune model and heads
    together); write the multi-exit model and its curve; --register NAME adds it as a
    variant of MODEL's version of NAME.

    Example: tierml adapt exits cnn.onnx --data mnist5k --tap @2 --tap @5
    """
    from tierml.api.adapting import ExitsOptions
    from tierml.api.adapting import exits as adapt_exits

    given = model_input(model, batch, shape, inputs)
    options = ExitsOptions(tuple(tap), data, out, profile, seed, epochs, limit, joint, register)
    with working("training exit heads"):
        report = adapt_exits(workspace(db), given, options)
    if fmt is OutputFormat.JSON:
        print_json(report.to_dict())
        return
    r = report.figures
    con = console()
    con.print(
        table(
            f"{r['model']}: exits",
            ["tap", "output", "head acc", "MACs up to"],
            [
                [t["tensor"], t["output"], f"{t['head_accuracy']:.4f}", t["macs_upto"]]
                for t in r["taps"]
            ],
        )
    )
    con.print(
        table(
            f"threshold curve (model alone {r['base_accuracy']:.4f})",
            ["threshold", "rates", "accuracy", "mean MACs", "saving"],
            [
                [
                    p["name"],
                    " ".join(f"{x:.2f}" for x in p["rates"]),
                    f"{p['accuracy']:.4f}",
                    f"{p['mean_macs']:.0f}",
                    f"{r['total_macs'] / p['mean_macs']:.2f}×",
                ]
                for p in r["curve"]
            ],
        )
    )
    con.print(f"curves → {r['curves']}" + _variant_line(report))


@adapt_app.command("codecs")
def codecs(
    model: ModelArg,
    data: DataOpt = "mnist5k",
    cut: Annotated[
        list[str] | None,
        typer.Option("--cut", help="Cut (repeat) [default: all].", show_default=False),
    ] = None,
    profile: ProfileOpt = None,
    seed: SeedOpt = 0,
    limit: LimitOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Measure every activation codec at the cuts: bytes ratio, ms, accuracy drop.

    Example: tierml adapt codecs cnn.onnx --data mnist5k --cut @2
    """
    from tierml.api.adapting import CodecsOptions
    from tierml.api.adapting import codecs as adapt_codecs

    given = model_input(model, batch, shape, inputs)
    options = CodecsOptions(data, tuple(cut or ()), profile, seed, limit)
    with working("measuring codecs at each cut"):
        report = adapt_codecs(workspace(), given, options)
    _show(
        fmt,
        report,
        lambda r: table(
            f"{model.stem}: codecs per cut (curves → {r['curves']})",
            ["tensor", "codec", "ratio", "enc ms", "dec ms", "acc drop (pts)", "zeros"],
            [
                [
                    c["tensor"],
                    c["codec"],
                    f"{c['ratio']:.2f}",
                    f"{c['encode_ms']:.3f}",
                    f"{c['decode_ms']:.3f}",
                    f"{100 * c['accuracy_drop']:.2f}",
                    f"{c['zero_share']:.2f}",
                ]
                for c in r["codecs"]
            ],
        ),
    )


@adapt_app.command("bottleneck")
def bottleneck(
    model: ModelArg,
    cut: CutOpt,
    data: DataOpt = "mnist5k",
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for device/server .onnx.")
    ] = None,
    code_channels: Annotated[
        int | None,
        typer.Option(
            "--code-channels", min=1, help="Code channels [default: C/4].", show_default=False
        ),
    ] = None,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Encoder stride.")] = 2,
    profile: ProfileOpt = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = None,
    limit: LimitOpt = None,
    register: RegisterOpt = None,
    db: DbOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Train a learned bottleneck at a cut; write its two partitions; --register NAME adds
    them, joined into one model, as a variant of MODEL's version of NAME.

    Example: tierml adapt bottleneck cnn.onnx --cut @2 --data mnist5k --out cnn-bn/
    """
    from tierml.api.adapting import BottleneckOptions
    from tierml.api.adapting import bottleneck as adapt_bottleneck

    given = model_input(model, batch, shape, inputs)
    options = BottleneckOptions(
        cut, data, out, code_channels, stride, profile, seed, epochs, limit, register
    )
    with working("training the bottleneck"):
        report = adapt_bottleneck(workspace(db), given, options)
    _show(
        fmt,
        report,
        lambda r: (
            f"bottleneck at {r['tensor']}: {r['raw_bytes']} → {r['code_bytes']} bytes "
            f"({r['ratio']:.1f}×), accuracy {r['accuracy']:.4f} (model {r['base_accuracy']:.4f}); "
            f"partitions → {r['out']}, curves → {r['curves']}" + _variant_line(report)
        ),
    )


def privacy(
    model: ModelArg,
    cut: CutOpt,
    data: DataOpt = "mnist5k",
    defend: Annotated[
        str, typer.Option("--defend", help="noise, regularise or adversarial.")
    ] = "noise",
    mechanism: Annotated[str, typer.Option("--mechanism", help="laplace or gaussian.")] = "laplace",
    epsilon: Annotated[
        list[float] | None,
        typer.Option(
            "--epsilon", help="ε (repeat) [default: a sweep of noise scales].", show_default=False
        ),
    ] = None,
    clip: Annotated[
        float | None,
        typer.Option(
            "--clip",
            help="Clipping norm C [default: median norm on public data].",
            show_default=False,
        ),
    ] = None,
    weight: Annotated[
        list[float] | None,
        typer.Option(
            "--weight",
            help="λ of regularise / adversarial (repeat) [default: the defence's sweep].",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOpt = None,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = None,
    limit: LimitOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Attack a cut (reconstruct the input from it) and measure a defence's curve.

    Defences: noise at the cut, or a fine-tune of both stages against the
    attacker (regularise: distance correlation; adversarial: a co-trained
    attacker through a noisy cut) with λ from --weight. Leakage is always
    a fresh attacker's.

    Example: tierml privacy cnn.onnx --cut @5 --data mnist5k --defend noise --epsilon 500
    """
    from tierml.api.adapting import PrivacyOptions
    from tierml.api.adapting import privacy as attack

    given = model_input(model, batch, shape, inputs)
    options = PrivacyOptions(
        cut,
        data,
        defend=defend,
        mechanism=mechanism,
        epsilons=tuple(epsilon) if epsilon is not None else None,
        clip=clip,
        weights=tuple(weight) if weight is not None else None,
        profile=profile,
        seed=seed,
        epochs=epochs,
        limit=limit,
    )
    with working("training the attack and the defence"):
        report = attack(workspace(), given, options)
    _show(
        fmt,
        report,
        lambda r: table(
            f"{model.stem} at {r['tensor']}: attacker reconstruction (curves → {r['curves']})",
            ["defence", "SSIM", "MSE", "SSIM drop", "MSE rise", "accuracy", "drop (pts)"],
            [
                [
                    p["name"],
                    f"{p['ssim']:.3f}",
                    f"{p['mse']:.4f}",
                    f"{1 - p['leakage_factor']:.0%}",
                    f"{p['mse_rise']:.0%}",
                    f"{p['accuracy']:.4f}",
                    f"{100 * p['accuracy_drop']:.2f}",
                ]
                for p in r["points"]
            ],
        ),
    )


def _version_line(report: TrainReport) -> str:
    reg = report.registered
    if reg is None:
        return ""
    how = "registered as" if reg.added is not None else "already registered as"
    return f"\n{how} {reg.model} v{reg.version} ({reg.sha256[:12]})"


def _variant_line(report: AdaptationReport) -> str:
    reg = report.registered
    if reg is None:
        return ""
    acc = reg.metrics.get("accuracy")
    figures = f", accuracy {acc:.4f}" if acc is not None else ""
    return f"\nregistered as variant {reg.name} ({reg.sha256[:12]}): {reg.status}{figures}"


def _show(
    fmt: OutputFormat, report: AdaptationReport, render: Callable[[dict[str, Any]], Any]
) -> None:
    if fmt is OutputFormat.JSON:
        print_json(report.to_dict())
    else:
        console().print(render(dict(report.figures)))
