"""The hardware and price catalog: tier, FaaS, link and radio profiles with their sources,
and checking the user's own catalog files.

The catalog is the packaged files, then ``HOME/catalog/*.toml`` of the workspace, then the
files given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tierml.core.errors import Remedy, UnknownProfileError
from tierml.core.tiers import Catalog, FaasProfile, LinkProfile, RadioProfile, TierProfile
from tierml.core.workspace import Workspace

__all__ = [
    "CatalogCheck",
    "CatalogEntry",
    "CatalogListing",
    "CatalogSection",
    "ProfileShown",
    "check_catalog",
    "list_catalog",
    "show_profile",
]

Profile = TierProfile | FaasProfile | LinkProfile | RadioProfile


class CatalogSection(StrEnum):
    TIER = "tier"
    FAAS = "faas"
    LINK = "link"
    RADIO = "radio"


@dataclass(frozen=True)
class CatalogEntry:
    section: CatalogSection
    profile: Profile

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def kind(self) -> str:
        """The tier's kind (device, edge, cloud); empty for the other sections."""
        return str(self.profile.kind) if isinstance(self.profile, TierProfile) else ""

    def figures(self) -> dict[str, Any]:
        """Fields as the TOML spells them (throughputs flattened), without name, sources
        and origin."""
        out: dict[str, Any] = {}
        for f in fields(self.profile):
            value = getattr(self.profile, f.name)
            if f.name in ("sources", "origin", "name"):
                continue
            if is_dataclass(value):
                suffix = "_per_vcpu" if f.name == "per_vcpu" else ""
                for inner in fields(value):
                    out[inner.name + suffix] = getattr(value, inner.name)
            elif value is not None:
                out[f.name] = str(value) if isinstance(value, StrEnum) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.profile)
        data["sources"] = dict(self.profile.sources)
        if "kind" in data:
            data["kind"] = str(data["kind"])
        return data


def _entries(catalog: Catalog) -> dict[CatalogSection, Mapping[str, Profile]]:
    return {
        CatalogSection.TIER: catalog.tiers,
        CatalogSection.FAAS: catalog.faas,
        CatalogSection.LINK: catalog.links,
        CatalogSection.RADIO: catalog.radios,
    }


def _load(workspace: Workspace, files: Sequence[Path]) -> Catalog:
    from tierml.catalog import load_catalog

    return load_catalog(list(files), home=workspace.home)


@dataclass(frozen=True)
class CatalogListing:
    sections: tuple[CatalogSection, ...]  # listed, even when empty
    entries: tuple[CatalogEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            s.value: {e.name: e.to_dict() for e in self.entries if e.section is s}
            for s in self.sections
        }


def list_catalog(
    workspace: Workspace,
    *,
    section: CatalogSection | None = None,
    files: Sequence[Path] = (),
) -> CatalogListing:
    """Every profile (of one section, when given), with the file it comes from."""
    found = _entries(_load(workspace, files))
    chosen = tuple(s for s in found if section is None or s is section)
    return CatalogListing(
        chosen, tuple(CatalogEntry(s, p) for s in chosen for p in found[s].values())
    )


@dataclass(frozen=True)
class ProfileShown:
    name: str
    entries: tuple[CatalogEntry, ...]  # one per section defining the name

    def to_dict(self) -> dict[str, Any]:
        return {e.section.value: e.to_dict() for e in self.entries}


def show_profile(workspace: Workspace, name: str, *, files: Sequence[Path] = ()) -> ProfileShown:
    """The profiles named ``name`` (a tier and a link may share one): every figure with
    its source."""
    found = _entries(_load(workspace, files))
    matches = tuple(CatalogEntry(s, e[name]) for s, e in found.items() if name in e)
    if not matches:
        known = sorted({n for e in found.values() for n in e})
        raise UnknownProfileError(
            f'No profile named "{name}"; known: {", ".join(known)}.',
            hint="Use a profile name the catalog lists.",
            remedy=Remedy.LIST_CATALOG,
            value=name,
            candidates=tuple(known),
        )
    return ProfileShown(name, matches)


@dataclass(frozen=True)
class CatalogCheck:
    files: tuple[Path, ...]
    profiles: Mapping[CatalogSection, int]  # per section, in the whole merged catalog

    @property
    def ok(self) -> bool:
        return True  # a file with a problem raises CatalogError listing every one

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": [str(f) for f in self.files],
            "profiles": {s.value: n for s, n in self.profiles.items()},
        }


def check_catalog(workspace: Workspace, files: Sequence[Path]) -> CatalogCheck:
    """Check catalog files against the schema and the shipped catalog; CatalogError lists
    every problem in every file."""
    found = _entries(_load(workspace, files))
    return CatalogCheck(tuple(files), {s: len(e) for s, e in found.items()})
