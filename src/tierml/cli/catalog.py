"""`tierml catalog`: the tier, FaaS, link and radio profiles, and checking user files.

Each command makes one call to :mod:`tierml.api.catalog` and renders its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from tierml.api.catalog import CatalogSection
from tierml.cli.options import FormatOpt, workspace
from tierml.cli.render import OutputFormat, console, print_json, table

if TYPE_CHECKING:
    pass

catalog_app = typer.Typer(
    help="The hardware and price catalog: tiers, FaaS, links, radios (TOML, with sources).",
    no_args_is_help=True,
)

FilesOpt = Annotated[
    list[Path] | None,
    typer.Option("--catalog", help="Extra catalog TOML file (repeatable).", show_default=False),
]


@catalog_app.command("list")
def catalog_list(
    section: Annotated[
        CatalogSection | None,
        typer.Option("--section", help="Only this section.", show_default=False),
    ] = None,
    catalog: FilesOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Every profile by section, with the file it comes from.

    Examples:
      tierml catalog list
      tierml catalog list --section link --format json
    """
    from tierml.api.catalog import list_catalog

    listing = list_catalog(workspace(), section=section, files=catalog or [])
    if fmt is OutputFormat.JSON:
        print_json(listing.to_dict())
        return
    rows = [
        [e.section.value, e.name, e.kind, e.profile.description, e.profile.origin]
        for e in listing.entries
    ]
    console().print(table("catalog", ["section", "name", "kind", "description", "file"], rows))


@catalog_app.command("show")
def catalog_show(
    name: Annotated[str, typer.Argument(help="A profile name from `tierml catalog list`.")],
    catalog: FilesOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """One profile: every figure with its source.

    Example: tierml catalog show raspberry-pi-4
    """
    from tierml.api.catalog import show_profile

    shown = show_profile(workspace(), name, files=catalog or [])
    if fmt is OutputFormat.JSON:
        print_json(shown.to_dict())
        return
    for entry in shown.entries:
        sources = entry.profile.sources
        rows = [[k, v, sources.get(k, "")] for k, v in entry.figures().items()]
        title = escape(f"[{entry.section.value}.{name}] from {entry.profile.origin}")
        console().print(table(title, ["field", "value", "source"], rows))


@catalog_app.command("check")
def catalog_check(
    files: Annotated[list[Path], typer.Argument(help="Catalog TOML files to check.")],
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Check catalog files against the schema and the shipped catalog; list every problem.

    Example: tierml catalog check my-devices.toml
    """
    from tierml.api.catalog import check_catalog

    checked = check_catalog(workspace(), files)
    if fmt is OutputFormat.JSON:
        print_json(checked.to_dict())
        return
    console().print(
        f"ok: {', '.join(str(f) for f in files)} · "
        + " · ".join(f"{n} {s.value}" for s, n in checked.profiles.items())
    )
