"""Reading the catalog: the files shipped with tierml, the user's, and any given by name.

Order: packaged files, then ``$TIERML_HOME/catalog/*.toml``, then files passed explicitly.
A user entry with the name of a packaged one replaces it (a local price, a measured
board); two user files defining one name is an error. Every problem in every file is
collected and raised at once.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from tierml.catalog.schema import SECTIONS, Profile, parse_catalog
from tierml.core.errors import CatalogError
from tierml.core.tiers import Catalog, FaasProfile, LinkProfile, RadioProfile, TierProfile

P = TypeVar("P", TierProfile, FaasProfile, LinkProfile, RadioProfile)

PACKAGED_PREFIX = "packaged:"


def packaged_files() -> list[tuple[str, str]]:
    """(origin, text) of the catalog files shipped with the package, in name order."""
    folder = resources.files("tierml.catalog").joinpath("data")
    found = sorted((p for p in folder.iterdir() if p.name.endswith(".toml")), key=lambda p: p.name)
    return [(f"{PACKAGED_PREFIX}{p.name}", p.read_text(encoding="utf-8")) for p in found]


def user_files(home: Path | None) -> list[Path]:
    if home is None or not (home / "catalog").is_dir():
        return []
    return sorted((home / "catalog").glob("*.toml"))


def load_catalog(
    files: Iterable[str | os.PathLike[str]] = (), *, home: Path | None = None
) -> Catalog:
    """The merged catalog; raises CatalogError listing every problem in every file."""
    texts = packaged_files()
    problems: list[str] = []
    for path in [*user_files(home), *(Path(f) for f in files)]:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
    return catalog_from_texts(texts, problems)


def catalog_from_texts(
    texts: Iterable[tuple[str, str]], problems: list[str] | None = None
) -> Catalog:
    problems = list(problems or [])
    merged: dict[str, dict[str, Profile]] = {s: {} for s in SECTIONS}
    origins: list[str] = []
    for origin, text in texts:
        origins.append(origin)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{origin}: not valid TOML: {exc}")
            continue
        parsed = parse_catalog(data, origin)
        problems += parsed.problems
        for section, entries in parsed.entries.items():
            for name, profile in entries.items():
                before = merged[section].get(name)
                if before is not None and not before.origin.startswith(PACKAGED_PREFIX):
                    problems.append(
                        f"{origin}: [{section}.{name}]: already defined in {before.origin}"
                    )
                merged[section][name] = profile
    for link in merged["link"].values():
        radio = link.radio if isinstance(link, LinkProfile) else None
        if radio is not None and radio not in merged["radio"]:
            known = ", ".join(sorted(merged["radio"])) or "none"
            problems.append(
                f"{link.origin}: [link.{link.name}] radio: no radio profile {radio!r}; "
                f"known: {known}"
            )
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise CatalogError(
            f"{count} in the catalog: " + "; ".join(problems) + ".",
            hint="Fix each entry named (see docs/catalog.md for the fields and units).",
            problems=tuple(problems),
        )
    return Catalog(
        tiers=_only(merged["tier"], TierProfile),
        faas=_only(merged["faas"], FaasProfile),
        links=_only(merged["link"], LinkProfile),
        radios=_only(merged["radio"], RadioProfile),
        files=tuple(origins),
    )


def _only(entries: Mapping[str, Profile], cls: type[P]) -> Mapping[str, P]:
    return MappingProxyType({n: p for n, p in sorted(entries.items()) if isinstance(p, cls)})
