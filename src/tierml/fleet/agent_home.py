"""The device agent's home: its key, its enrolment, its models, its telemetry, its status.

::

    HOME/device.key          the device's Ed25519 private key (PEM, 0600), made on first run
    HOME/enrolment.json      device id, model, the control plane's pinned key (0600)
    HOME/active.json         which model is active and which ran before (device_artifacts)
    HOME/artifacts/          the active and previous models, by sha256
    HOME/start_guard.json    failed starts of the assigned model, and a rollback to report
    HOME/telemetry.sqlite    batches not yet acknowledged (telemetry_queue)
    HOME/serving/            the one-stage bundle the local endpoint serves
    HOME/agent.json          what the running agent is doing: pid, endpoint, model, counts

Every file is replaced atomically (written beside, fsynced, renamed), so a kill at any
moment leaves the old content or the new, never half of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.core.errors import OutputPathError
from tierml.fleet.agent_http import Enrolled
from tierml.fleet.identity import DeviceIdentity, write_private_file
from tierml.plan.rollout_device import StartGuard
from tierml.plan.rollout_spec import START_FAILURE_LIMIT

KEY_FILE = "device.key"
ENROLMENT_FILE = "enrolment.json"
GUARD_FILE = "start_guard.json"
QUEUE_FILE = "telemetry.sqlite"
STATUS_FILE = "agent.json"
SERVING_DIR = "serving"


@dataclass(frozen=True)
class GuardRecord:
    """The start guard of the assigned model, and a rollback the control plane has not
    heard of yet (the sha256 rolled back from)."""

    guard: StartGuard | None
    unreported_rollback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        guard = self.guard
        return {
            "assigned": guard.assigned if guard else None,
            "previous": guard.previous if guard else None,
            "start_failures": guard.start_failures if guard else 0,
            "unreported_rollback": self.unreported_rollback,
        }

    @classmethod
    def from_dict(cls, raw: object) -> GuardRecord:
        if not isinstance(raw, dict) or not isinstance(raw.get("assigned"), str):
            return cls(None)
        previous = raw.get("previous")
        failures = raw.get("start_failures", 0)
        unreported = raw.get("unreported_rollback")
        guard = StartGuard(
            raw["assigned"],
            previous if isinstance(previous, str) else None,
            failures if isinstance(failures, int) and failures >= 0 else 0,
            START_FAILURE_LIMIT,
        )
        return cls(guard, unreported if isinstance(unreported, str) else None)


class AgentHome:
    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o700)  # the key and the enrolment are the device's secrets
        except OSError as error:
            raise OutputPathError(
                f"Cannot use {root} as the agent's home: {error.strerror}.", path=str(root)
            ) from None
        self.root = root

    @property
    def queue_path(self) -> Path:
        return self.root / QUEUE_FILE

    @property
    def serving_dir(self) -> Path:
        return self.root / SERVING_DIR

    def identity(self) -> DeviceIdentity:
        """The device's key pair, made and saved (0600) on first use."""
        return DeviceIdentity.load_or_create(self.root / KEY_FILE)

    # -- enrolment -----------------------------------------------------------------------
    def enrolment(self) -> Enrolled | None:
        raw = self._read(ENROLMENT_FILE)
        return None if raw is None else Enrolled.from_dict(raw)

    def save_enrolment(self, enrolled: Enrolled) -> None:
        self._write(ENROLMENT_FILE, enrolled.to_dict())

    # -- the start guard -----------------------------------------------------------------
    def guard(self) -> GuardRecord:
        return GuardRecord.from_dict(self._read(GUARD_FILE))

    def save_guard(self, record: GuardRecord) -> None:
        self._write(GUARD_FILE, record.to_dict())

    # -- what the agent is doing ---------------------------------------------------------
    def write_status(self, status: dict[str, Any]) -> None:
        self._write(STATUS_FILE, status)

    def status(self) -> dict[str, Any] | None:
        raw = self._read(STATUS_FILE)
        return raw if isinstance(raw, dict) else None

    # -- files ---------------------------------------------------------------------------
    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.root / name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: as if absent (every write is atomic, so rare)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=1, sort_keys=True).encode()
        write_private_file(self.root / name, text, overwrite=True)
