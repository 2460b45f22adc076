"""`tierml model`, `tierml variant`, `tierml lineage`, `tierml select`: the model registry.

Each command opens the registry (``--db`` or ``TIERML_REGISTRY_URL``, else SQLite under
``TIERML_HOME``), calls one library function and renders its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from tierml.cli.options import FormatOpt
from tierml.cli.render import OutputFormat, console, human_bytes, print_json, table, working

if TYPE_CHECKING:
    from tierml.registry import Registry

T = TypeVar("T")

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


@contextmanager
def _registry(db: str | None) -> Iterator[Registry]:
    from tierml.profile.predictor_store import tierml_home
    from tierml.registry import Registry

    registry = Registry.open(tierml_home(), db)
    try:
        yield registry
    finally:
        registry.close()


def _run(db: str | None, fn: Callable[[Registry], T]) -> T:
    with _registry(db) as registry:
        return fn(registry)


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
    regenerate: Annotated[
        bool, typer.Option(help="Rebuild the previous version's variants against this one.")
    ] = True,
    tier: TierOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Register FILE as the next version of NAME; rebuild the previous version's variants.

    Example: tierml model add digits cnn.onnx --eval digits.npz --card CARD.md
    """
    from tierml.registry.regeneration import add_version

    with working("registering and measuring"):
        out = _run(
            db,
            lambda r: add_version(
                r, name, file, eval_file=eval_data, card_file=card, tiers=tier,
                regenerate_variants=regenerate,
            ),
        )  # fmt: skip
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    m = out["metrics"]
    acc = f", accuracy {m['accuracy']:.4f}" if "accuracy" in m else ""
    console().print(
        f"{name} v{out['version']} ({out['sha256'][:12]}): "
        f"{human_bytes(m['size_bytes'])}{acc}, {m['host_latency_ms']:.3f} ms here"
    )
    if out["regenerated"]:
        _print_variants(f"regenerated from v{out['regenerated_from']}", out["regenerated"])


@model_app.command("list")
def model_list(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Every registered model. Example: tierml model list"""
    from tierml.registry.versions import list_models

    rows = _run(db, list_models)
    if fmt is OutputFormat.JSON:
        print_json({"models": rows})
        return
    console().print(
        table(
            "models",
            ["model", "versions", "latest", "recipes", "variants of latest"],
            [[r["model"], r["versions"], r["latest"], r["recipes"], r["variants"]] for r in rows],
        )
    )


@model_app.command("show")
def model_show(name: ModelNameArg, db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """A model's versions, card, metrics, recipes and variants. Example: tierml model show digits"""
    from tierml.registry.versions import show_model

    out = _run(db, lambda r: show_model(r, name))
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    con = console()
    rows = []
    for v in out["versions"]:
        m = v["metrics"]
        rows.append(
            [v["version"], v["sha256"][:12], human_bytes(m["size_bytes"]),
             _fmt(m.get("accuracy")), v["card"].get("task", "-"), len(v["variants"])]
        )  # fmt: skip
    con.print(table(name, ["version", "sha256", "size", "accuracy", "task", "variants"], rows))
    recipes = [
        [r["name"], r["transform"], r["params"], r["parent"] or "-",
         _fmt(r["max_accuracy_drop"]), r["max_size_bytes"] or "-"]
        for r in out["recipes"]
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
    done = _run(db, lambda r: r.collect_garbage(tmp_age_s=tmp_age))
    out = {
        "removed": list(done.removed),
        "removed_tmp": done.removed_tmp,
        "freed": done.freed_bytes,
    }
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    console().print(
        f"removed {len(done.removed)} artifacts and {done.removed_tmp} temporary files, "
        f"freed {human_bytes(done.freed_bytes)}"
    )


@model_app.command("check")
def model_check(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Verify every referenced artifact's checksum. Example: tierml model check"""
    found = _run(db, lambda r: r.check())
    out = {
        "ok": found.ok,
        "rows_checked": found.rows_checked,
        "missing": list(found.missing),
        "corrupt": list(found.corrupt),
        "unreferenced": list(found.unreferenced),
        "temporaries": found.temporaries,
    }
    if fmt is OutputFormat.JSON:
        print_json(out)
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
    from tierml.registry.building import add_recipe

    params = _params(param or [])
    recipe = _run(
        db,
        lambda r: add_recipe(
            r, model, name, transform, params, parent=parent,
            max_accuracy_drop=max_accuracy_drop, max_size_bytes=max_size,
        ),
    )  # fmt: skip
    out = {
        "model": recipe.model,
        "name": recipe.name,
        "transform": recipe.transform,
        "params": recipe.params,
        "parent": recipe.parent,
        "max_accuracy_drop": recipe.max_accuracy_drop,
        "max_size_bytes": recipe.max_size_bytes,
    }
    if fmt is OutputFormat.JSON:
        print_json(out)
    else:
        console().print(f"{model}: recipe {name} = {transform} {recipe.params}")


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
    from tierml.registry.building import build_variants

    with working("building and measuring variants"):
        built = _run(
            db, lambda r: build_variants(r, model, recipe or [], version=version, tiers=tier)
        )
    if fmt is OutputFormat.JSON:
        print_json({"model": model, "variants": built})
        return
    _print_variants(model, built)


@variant_app.command("list")
def variant_list(
    model: ModelNameArg,
    version: VersionOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """The variants of a version with their metrics. Example: tierml variant list digits"""
    from tierml.registry.building import list_variants

    out = _run(db, lambda r: list_variants(r, model, version))
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    _print_variants(f"{model} v{out['version']}", out["variants"])


def lineage(name: ModelNameArg, db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Versions and the variants derived from each, as a DAG.

    Example: tierml lineage digits --format json
    """
    from tierml.registry.lineage import lineage_document

    doc = _run(db, lambda r: lineage_document(r, name))
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    con = console()
    con.print(f"{doc['model']}")
    for v in doc["versions"]:
        con.print(f"└─ v{v['version']} {v['sha256'][:12]}")
        children: dict[str | None, list[dict[str, Any]]] = {}
        for x in v["variants"]:
            children.setdefault(x["parent"], []).append(x)

        _print_tree(children, None, 1)


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
    from tierml.registry.device import read_device, read_policy
    from tierml.registry.selection import select_variant

    described = read_device(device)
    rules = read_policy(policy) if policy is not None else None
    out = _run(db, lambda r: select_variant(r, name, described, version=version, policy=rules))
    if fmt is OutputFormat.JSON:
        print_json(out)
    else:
        con = console()
        rows = [
            [c["name"], c["transform"], "yes" if c["eligible"] else "no",
             c["size_bytes"], _fmt(c["accuracy"]), _fmt(c["latency_ms"]),
             "; ".join(c["reasons"]) or "-"]
            for c in out["candidates"]
        ]  # fmt: skip
        con.print(
            table(
                f"{name} v{out['version']} for {out['device']}",
                ["candidate", "transform", "eligible", "bytes", "accuracy", "ms", "why not"],
                rows,
            )
        )
        con.print(out["explanation"])
    if out["chosen"] is None:
        raise typer.Exit(1)


def _print_tree(
    children: dict[str | None, list[dict[str, Any]]], parent: str | None, depth: int
) -> None:
    for x in children.get(parent, []):
        console().print(
            f"{'   ' * depth}└─ {x['name']} ({x['transform']}) {x['sha256'][:12]} {x['status']}"
        )
        _print_tree(children, x["name"], depth + 1)


def _print_variants(title: str, variants: list[dict[str, Any]]) -> None:
    rows = []
    for v in variants:
        m = v["metrics"]
        tiers = {k: x for k, x in m.get("latency_ms", {}).items() if isinstance(x, int | float)}
        rows.append(
            [v["name"], v["transform"], v["parent"] or "-", v["sha256"][:12],
             human_bytes(m["size_bytes"]), _fmt(m.get("accuracy")),
             f"{m['host_latency_ms']:.3f}",
             ", ".join(f"{k} {x:.3f}" for k, x in tiers.items()) or "-",
             v["status"] + (f": {v['reason']}" if v["reason"] else "")]
        )  # fmt: skip
    console().print(
        table(
            title,
            ["variant", "transform", "from", "sha256", "size", "accuracy", "host ms", "tier ms",
             "status"],
            rows,
        )
    )  # fmt: skip


def _params(items: list[str]) -> dict[str, str]:
    from tierml.core.errors import UnknownTransformError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UnknownTransformError(
                f'--param "{item}" is not KEY=VALUE.', hint="Example: --param ratio=0.3"
            )
        out[key.strip()] = value.strip()
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
