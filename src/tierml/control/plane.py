"""The control plane's handle: the workspace's registry, the fleet's tables beside it in the
same database, and the key it signs manifests with. One per process; every process over
one database behaves the same (shared key, shared nonces, per-row constraints)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import Engine

from tierml.control.database import FLEET_CHAIN, FLEET_HEAD
from tierml.control.keys import control_plane_key
from tierml.core.workspace import Workspace
from tierml.fleet.identity import ControlPlaneKey
from tierml.registry import Registry
from tierml.registry.database import migrate


@dataclass
class ControlPlane:
    registry: Registry
    key: ControlPlaneKey

    @property
    def engine(self) -> Engine:
        return self.registry.engine

    @classmethod
    def open(cls, workspace: Workspace) -> ControlPlane:
        registry = Registry.open(workspace)
        try:
            migrate(registry.engine, FLEET_HEAD, chain=FLEET_CHAIN)
            key = control_plane_key(registry.engine, datetime.now(UTC).replace(tzinfo=None))
        except BaseException:
            registry.close()
            raise
        return cls(registry, key)

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
