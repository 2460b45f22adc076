"""Workspaces for tests: a private home, this host, and measurements with the counts asked
for and no time floors (the suite checks what measurements compute, not how precise they
are)."""

from __future__ import annotations

from pathlib import Path

from tierml.core.workspace import TimeFloors, Workspace
from tierml.profile.host import this_host

QUICK = TimeFloors(0.0, 0.0)


def quick_workspace(home: Path, registry_url: str | None = None) -> Workspace:
    return Workspace(home=home, host=this_host(), registry_url=registry_url, time_floors=QUICK)
