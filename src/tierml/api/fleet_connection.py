"""How a fleet action reaches the control plane: through the workspace (opened for the one
call, as a command does) or through a connection a long-running process opened once (the
server: one engine and one signing key for every request)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from tierml.control.plane import ControlPlane
from tierml.core.errors import InputDataError
from tierml.core.workspace import Workspace


@dataclass
class FleetConnection:
    """The workspace's control plane, open until :meth:`close` (thread-safe: each action
    takes its own database sessions)."""

    workspace: Workspace
    plane: ControlPlane

    def close(self) -> None:
        self.plane.close()

    def __enter__(self) -> FleetConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(workspace: Workspace) -> FleetConnection:
    """Open the workspace's control plane (its database migrated, its signing key made once)
    for many actions; pass the connection wherever an action takes the workspace."""
    return FleetConnection(workspace, ControlPlane.open(workspace))


# Every fleet action takes either.
Fleet = Workspace | FleetConnection


@contextmanager
def opened(where: Fleet) -> Iterator[ControlPlane]:
    if isinstance(where, FleetConnection):
        yield where.plane
        return
    with ControlPlane.open(where) as plane:
        yield plane


def now_or_clock(now: datetime | None) -> datetime:
    """The time an action runs at: the caller's (an edge that read its clock, a test), or
    this machine's clock."""
    return now if now is not None else datetime.now(UTC)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def json_object(body: bytes, what: str) -> Mapping[str, Any]:
    """A request body as a JSON object; E_INPUT naming ``what`` when it is not one (not
    UTF-8, not JSON, NaN or Infinity, nested beyond the parser's depth, not an object)."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InputDataError(
            f"The {what} body is not JSON: {str(exc)[:120]}.",
            hint="Send a UTF-8 JSON object with the fields the protocol defines.",
            field=what,
        ) from None
    if not isinstance(value, Mapping):
        raise InputDataError(
            f"The {what} body is JSON but not an object.",
            hint="Send a JSON object with the fields the protocol defines.",
            field=what,
        )
    return value
