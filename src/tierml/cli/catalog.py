"""`tierml catalog`: the tier, FaaS, link and radio profiles, and checking user files."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tierml.cli.render import OutputFormat, console, print_json, table

catalog_app = typer.Typer(
    help="The hardware and price catalog: tiers, FaaS, links, radios (TOML, with sources).",
    no_args_is_help=True,
)

FilesOpt = Annotated[
    list[Path] | None,
    typer.Option("--catalog", help="Extra catalog TOML file (repeatable).", show_default=False),
]


class Section(StrEnum):
    TIER = "tier"
    FAAS = "faas"
    LINK = "link"
    RADIO = "radio"


def _load(files: list[Path] | None) -> Any:
    from tierml.catalog import load_catalog
    from tierml.profile.predictor_store import tierml_home

    return load_catalog(files or [], home=tierml_home())


def _sections(catalog: Any) -> dict[str, dict[str, Any]]:
    return {
        "tier": dict(catalog.tiers),
        "faas": dict(catalog.faas),
        "link": dict(catalog.links),
        "radio": dict(catalog.radios),
    }


def _plain(profile: Any) -> dict[str, Any]:
    data = asdict(profile)
    data["sources"] = dict(profile.sources)
    if "kind" in data:
        data["kind"] = str(data["kind"])
    return data


@catalog_app.command("list")
def catalog_list(
    section: Annotated[
        Section | None, typer.Option("--section", help="Only this section.", show_default=False)
    ] = None,
    catalog: FilesOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
) -> None:
    """Every profile by section, with the file it comes from.

    Examples:
      tierml catalog list
      tierml catalog list --section link --format json
    """
    found = _sections(_load(catalog))
    chosen = {k: v for k, v in found.items() if section is None or k == section.value}
    if fmt is OutputFormat.JSON:
        print_json({k: {n: _plain(p) for n, p in v.items()} for k, v in chosen.items()})
        return
    rows = [
        [s, name, getattr(p, "kind", "") or "", p.description, p.origin]
        for s, entries in chosen.items()
        for name, p in entries.items()
    ]
    console().print(table("catalog", ["section", "name", "kind", "description", "file"], rows))


@catalog_app.command("show")
def catalog_show(
    name: Annotated[str, typer.Argument(help="A profile name from `tierml catalog list`.")],
    catalog: FilesOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
) -> None:
    """One profile: every figure with its source.

    Example: tierml catalog show raspberry-pi-4
    """
    from tierml.core.errors import UnknownProfileError

    loaded = _load(catalog)
    matches = [(s, e[name]) for s, e in _sections(loaded).items() if name in e]
    if not matches:
        known = sorted({n for e in _sections(loaded).values() for n in e})
        raise UnknownProfileError(
            f'No profile named "{name}"; known: {", ".join(known)}.',
            hint="See `tierml catalog list`.",
        )
    if fmt is OutputFormat.JSON:
        print_json({s: _plain(p) for s, p in matches})
        return
    for section, profile in matches:
        rows = [[k, v, profile.sources.get(k, "")] for k, v in _flat(profile).items()]
        title = escape(f"[{section}.{name}] from {profile.origin}")
        console().print(table(title, ["field", "value", "source"], rows))


def _flat(profile: Any) -> dict[str, Any]:
    """Fields as the TOML spells them (throughputs flattened), without sources/origin."""
    out: dict[str, Any] = {}
    for f in fields(profile):
        value = getattr(profile, f.name)
        if f.name in ("sources", "origin", "name"):
            continue
        if is_dataclass(value):
            suffix = "_per_vcpu" if f.name == "per_vcpu" else ""
            for inner in fields(value):
                out[inner.name + suffix] = getattr(value, inner.name)
        elif value is not None:
            out[f.name] = str(value) if isinstance(value, StrEnum) else value
    return out


@catalog_app.command("check")
def catalog_check(
    files: Annotated[list[Path], typer.Argument(help="Catalog TOML files to check.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
) -> None:
    """Check catalog files against the schema and the shipped catalog; list every problem.

    Example: tierml catalog check my-devices.toml
    """
    loaded = _load(files)
    counts = {s: len(e) for s, e in _sections(loaded).items()}
    if fmt is OutputFormat.JSON:
        print_json({"ok": True, "files": [str(f) for f in files], "profiles": counts})
        return
    console().print(
        f"ok: {', '.join(str(f) for f in files)} · "
        + " · ".join(f"{n} {s}" for s, n in counts.items())
    )
