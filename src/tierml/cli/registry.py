"""`tierml model`, `tierml variant`, `tierml lineage`, `tierml select`: the model registry.

Each command builds the workspace (``--db`` wins over ``TIERML_REGISTRY_URL``; else
SQLite under ``TIERML_HOME``), makes one call to :mod:`tierml.api.registry` and renders
its report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tierml.cli.options import BatchOpt, FormatOpt, InputsOpt, ShapeOpt, model_input, workspace
from tierml.cli.render import OutputFormat, console, human_bytes, print_json, table, working
from tierml.core.errors import Remedy, UnknownTransformError

if TYPE_CHECKING:
    from tierml.api.registry import InputSpec, VariantInfo

model_app = typer.Typer(
    help="Registered models and their versions (model card, eval set, metrics).",
    no_args_is_help=True,
)
variant_app = typer.Typer(
    help="Variant recipes (fp16, int8, pruning, exits, bottleneck, noise) and their variants.",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Registry database URL (default: TIERML_REGISTRY_URL, else SQLite under TIERML_HOME).",
        show_default=False,
    ),
]
TierOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tier",
        help="Catalog tier to predict latency on (repeatable; default: every device tier).",
        show_default=False,
    ),
]
ModelNameArg = Annotated[str, typer.Argument(help="Model name in the registry.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", min=1, help="Version number (default: newest).")
]


@model_app.command("add")
def model_add(
    name: ModelNameArg,
    file: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="Evaluation set: .npz with inputs (or x) and labels."),
    ] = None,
    card: Annotated[
        Path | None,
        typer.Option("--card", help="Model card: Markdown with ## Task, ## Licence, … sections."),
    ] = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    regenerate: Annotated[
        bool, typer.Option(help="Rebuild the previous version's variants against this one.")
    ] = True,
    tier: TierOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Register FILE as the next version of NAME; rebuild the previous version's variants.

    --batch, --shape and --inputs fix dynamic dimensions and are recorded with the version
    (variants, regeneration and selection reuse them); without them the previous version's
    are reused when they fit FILE's inputs.

    Example: tierml model add digits cnn.onnx --eval digits.npz --card CARD.md
    """
    from tierml.api.registry import AddModelOptions, add_model

    options = AddModelOptions(
        eval_data=eval_data,
        card=card,
        regenerate=regenerate,
        tiers=tuple(tier) if tier is not None else None,
    )
    with working("registering and measuring"):
        out = add_model(workspace(db), name, model_input(file, batch, shape, inputs), options)
    if fmt is OutputFormat.JSON:
        print_json(out.to_dict())
        return
    m = out.metrics
    acc = f", accuracy {m['accuracy']:.4f}" if "accuracy" in m else ""
    con = console()
    con.print(
        f"{name} v{out.version} ({out.sha256[:12]}): "
        f"{human_bytes(m['size_bytes'])}{acc}, {m['host_latency_ms']:.3f} ms here"
    )
    if not out.input_spec.empty:
        reused = f" (from v{out.spec_from})" if out.spec_from is not None else ""
        con.print(f"inputs: {_spec_text(out.input_spec)}{reused}")
    if out.regenerated is not None and out.regenerated.variants:
        done = out.regenerated
        _print_variants(f"regenerated from v{done.from_version}", done.variants)


@model_app.command("list")
def model_list(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Every registered model. Example: tierml model list"""
    from tierml.api.registry import list_models

    listed = list_models(workspace(db))
    if fmt is OutputFormat.JSON:
        print_json(listed.to_dict())
        return
    console().print(
        table(
            "models",
            ["model", "versions", "latest", "recipes", "variants of latest"],
            [[r.model, r.versions, r.latest, r.recipes, r.variants] for r in listed.models],
        )
    )


@model_app.command("show")
def model_show(name: ModelNameArg, db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """A model's versions, card, metrics, recipes and variants. Example: tierml model show digits"""
    from tierml.api.registry import show_model

    out = show_model(workspace(db), name)
    if fmt is OutputFormat.JSON:
        print_json(out.to_dict())
        return
    con = console()
    rows = []
    for v in out.versions:
        m = v.metrics
        rows.append(
            [v.version, v.sha256[:12], human_bytes(m["size_bytes"]), _fmt(m.get("accuracy")),
             v.card.get("task", "-"), _spec_text(v.input_spec) or "-", len(v.variants)]
        )  # fmt: skip
    con.print(
        table(name, ["version", "sha256", "size", "accuracy", "task", "inputs", "variants"], rows)
    )
    recipes = [
        [r.name, r.transform, dict(r.params), r.parent or "-", _fmt(r.max_accuracy_drop),
         r.max_size_bytes or "-"]
        for r in out.recipes
    ]  # fmt: skip
    if recipes:
        con.print(
            table(
                "recipes", ["recipe", "transform", "params", "from", "max drop", "max B"], recipes
            )
        )


@model_app.command("gc")
def model_gc(
    db: DbOpt = None,
    tmp_age: Annotated[
        float, typer.Option("--tmp-age", help="Remove temporary files older than this (s).")
    ] = 3600.0,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Delete artifacts no version or variant references. Example: tierml model gc"""
    from tierml.api.registry import collect_garbage

    done = collect_garbage(workspace(db), tmp_age_s=tmp_age)
    if fmt is OutputFormat.JSON:
        print_json(done.to_dict())
        return
    console().print(
        f"removed {len(done.removed)} artifacts and {done.removed_tmp} temporary files, "
        f"freed {human_bytes(done.freed_bytes)}"
    )


@model_app.command("check")
def model_check(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Verify every referenced artifact's checksum. Example: tierml model check"""
    from tierml.api.registry import check

    found = check(workspace(db))
    if fmt is OutputFormat.JSON:
        print_json(found.to_dict())
    else:
        console().print(
            f"{found.rows_checked} artifacts checked: {len(found.missing)} missing, "
            f"{len(found.corrupt)} corrupt; {len(found.unreferenced)} unreferenced, "
            f"{found.temporaries} temporary files (tierml model gc removes them)"
        )
    if not found.ok:
        raise typer.Exit(1)


@variant_app.command("add-recipe")
def variant_add_recipe(
    model: ModelNameArg,
    name: Annotated[str, typer.Argument(help="Recipe name, unique within the model.")],
    transform: Annotated[
        str,
        typer.Option(
            "--transform",
            help="fp16, int8-dynamic, int8-static, prune, exits, bottleneck or noise.",
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="Transform parameter KEY=VALUE (repeatable).", show_default=False
        ),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option("--from", help="Build on this recipe's variant instead of the version."),
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option("--max-accuracy-drop", help="Flag the variant above this top-1 drop."),
    ] = None,
    max_size: Annotated[
        int | None, typer.Option("--max-size", help="Flag the variant above this many bytes.")
    ] = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Declare a variant recipe once per model; every version gets built with it.

    Example: tierml variant add-recipe digits int8 --transform int8-static --max-accuracy-drop 0.01
    """
    from tierml.api.registry import RecipeOptions, add_recipe

    options = RecipeOptions(
        transform=transform,
        params=_params(param or []),
        parent=parent,
        max_accuracy_drop=max_accuracy_drop,
        max_size_bytes=max_size,
    )
    recipe = add_recipe(workspace(db), model, name, options)
    if fmt is OutputFormat.JSON:
        print_json(recipe.to_dict())
    else:
        console().print(f"{model}: recipe {name} = {transform} {dict(recipe.params)}")


@variant_app.command("build")
def variant_build(
    model: ModelNameArg,
    recipe: Annotated[
        list[str] | None,
        typer.Argument(help="Recipes to build (default: all).", show_default=False),
    ] = None,
    version: VersionOpt = None,
    tier: TierOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Build (and measure) variants of a version; already-built ones are kept.

    Example: tierml variant build digits --tier raspberry-pi-4
    """
    from tierml.api.registry import build_variants

    with working("building and measuring variants"):
        built = build_variants(workspace(db), model, recipe or [], version=version, tiers=tier)
    if fmt is OutputFormat.JSON:
        print_json(built.to_dict())
        return
    _print_variants(model, built.variants)


@variant_app.command("list")
def variant_list(
    model: ModelNameArg,
    version: VersionOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """The variants of a version with their metrics. Example: tierml variant list digits"""
    from tierml.api.registry import list_variants

    out = list_variants(workspace(db), model, version=version)
    if fmt is OutputFormat.JSON:
        print_json(out.to_dict())
        return
    _print_variants(f"{model} v{out.version}", out.variants)


def lineage(name: ModelNameArg, db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Versions and the variants derived from each, as a DAG.

    Example: tierml lineage digits --format json
    """
    from tierml.api.registry import lineage as lineage_of

    doc = lineage_of(workspace(db), name)
    if fmt is OutputFormat.JSON:
        print_json(doc.to_dict())
        return
    con = console()
    con.print(doc.model)
    for v in doc.versions:
        con.print(f"└─ v{v.version} {v.sha256[:12]}")
        _print_tree(v.variants, None, 1)


def select(
    name: ModelNameArg,
    device: Annotated[Path, typer.Option("--device", help="Device description TOML.")],
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Policy TOML ([[policy]] rules) replacing the device's."),
    ] = None,
    version: VersionOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Choose the variant a device should run, by policy, and explain why.

    Example: tierml select digits --device examples/devices/field-sensor-low-battery.toml
    """
    from tierml.api.registry import select as select_for

    out = select_for(workspace(db), name, device, policy=policy, version=version)
    if fmt is OutputFormat.JSON:
        print_json(out.to_dict())
    else:
        con = console()
        rows = [
            [c.name, c.transform, "yes" if c.eligible else "no", c.size_bytes,
             _fmt(c.accuracy), _fmt(c.latency_ms), "; ".join(c.reasons) or "-"]
            for c in out.candidates
        ]  # fmt: skip
        con.print(
            table(
                f"{name} v{out.version} for {out.device}",
                ["candidate", "transform", "eligible", "bytes", "accuracy", "ms", "why not"],
                rows,
            )
        )
        con.print(out.explanation)
    if out.chosen is None:
        raise typer.Exit(1)


def _print_tree(variants: Sequence[VariantInfo], parent: str | None, depth: int) -> None:
    for x in variants:
        if x.parent == parent:
            console().print(
                f"{'   ' * depth}└─ {x.name} ({x.transform}) {x.sha256[:12]} {x.status}"
            )
            _print_tree(variants, x.name, depth + 1)


def _print_variants(title: str, variants: Sequence[VariantInfo]) -> None:
    rows = []
    for v in variants:
        m = v.metrics
        tiers = {k: x for k, x in m.get("latency_ms", {}).items() if isinstance(x, int | float)}
        rows.append(
            [v.name, v.transform, v.parent or "-", v.sha256[:12],
             human_bytes(m["size_bytes"]), _fmt(m.get("accuracy")),
             f"{m['host_latency_ms']:.3f}",
             ", ".join(f"{k} {x:.3f}" for k, x in tiers.items()) or "-",
             v.status + (f": {v.reason}" if v.reason else "")]
        )  # fmt: skip
    console().print(
        table(
            title,
            ["variant", "transform", "from", "sha256", "size", "accuracy", "host ms", "tier ms",
             "status"],
            rows,
        )
    )  # fmt: skip


def _spec_text(spec: InputSpec) -> str:
    parts = [f"batch {spec.batch}"] if spec.batch is not None else []
    parts += [f"{k}={','.join(map(str, dims))}" for k, dims in spec.shapes.items()]
    if spec.inputs_sha256 is not None:
        parts.append(f"arrays {spec.inputs_sha256[:12]}")
    return " ".join(parts)


def _params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UnknownTransformError(
                f'--param "{item}" is not KEY=VALUE.',
                hint="Example: --param ratio=0.3",
                remedy=Remedy.TRANSFORM_PARAM,
                key="ratio",
                example="0.3",
            )
        out[key.strip()] = value.strip()
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
