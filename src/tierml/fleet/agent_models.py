"""Which model the device serves: assignments downloaded, checked, started, then made active.

An assignment's manifest is checked against the control plane's key pinned at enrolment
(and this device's id) before a byte is fetched; the download goes to a temporary file
checked for size and sha256 before it gets its content address (``device_artifacts``), so
a download cut short — a kill, a dropped link — is never made active. The new model is
started beside the one serving (its session made and run once) and swapped in only when it
started; only then does ``active.json`` name it, the model it replaced kept as the previous.

A model that fails to start is tried again, up to the start guard's limit (three failed
starts, counted across restarts); then the device stays on — or goes back to — the model
before it, and says so at its next check-in (``rolled_back``, ``start_failures``), while
the guard keeps it from trying that model again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tierml.core.errors import ArtifactFailure, ArtifactVerificationError, TiermlError
from tierml.fleet.agent_home import AgentHome, GuardRecord
from tierml.fleet.agent_http import ControlPlaneHttp, Signer
from tierml.fleet.device_artifacts import DeviceArtifacts, Installed
from tierml.fleet.identity import public_key_from_text
from tierml.fleet.local_serving import LocalEndpoint
from tierml.fleet.manifests import ArtifactManifest, SignedManifest, verify_file, verify_manifest
from tierml.fleet.protocol import Assigned, Running
from tierml.plan.rollout_device import StartGuard


@dataclass
class ModelCounts:
    downloads: int = 0
    swaps: int = 0  # models started and made active
    start_failures: int = 0
    rollbacks: int = 0  # given up on a model, or rolled back on command

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))


class DeviceModels:
    def __init__(
        self,
        home: AgentHome,
        endpoint: LocalEndpoint,
        http: ControlPlaneHttp,
        signer: Signer,
        control_plane_key: str,
        *,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.home, self.endpoint, self.http, self.signer = home, endpoint, http, signer
        self.pinned = public_key_from_text(control_plane_key)
        self.artifacts = DeviceArtifacts(home.root)
        self.counts = ModelCounts()
        self.log = log

    @property
    def serving(self) -> Running | None:
        return self.endpoint.running

    # -- what a check-in reports ---------------------------------------------------------
    def report(self) -> tuple[int, str | None]:
        """(failed starts of the assigned model, the sha256 rolled back from unreported)."""
        record = self.home.guard()
        return (record.guard.start_failures if record.guard else 0), record.unreported_rollback

    def reported(self, rolled_back: str | None) -> None:
        """A check-in carrying ``rolled_back`` was answered: it need not be said again."""
        record = self.home.guard()
        if rolled_back is not None and record.unreported_rollback == rolled_back:
            self.home.save_guard(replace(record, unreported_rollback=None))

    # -- at start ------------------------------------------------------------------------
    def serve_active(self) -> None:
        """Serve what ``active.json`` names; when it does not start, the previous one
        meanwhile (the assignment decides at the next check-in)."""
        record = self.home.guard()
        for installed in (self.artifacts.active, self.artifacts.previous):
            if installed is None:
                continue
            sha = installed.running.sha256
            guard = record.guard
            if guard is not None and guard.assigned == sha and guard.rolled_back:
                continue
            try:
                self._start(installed)
                self.log(f"serving {_short(installed.running)}, as before the agent stopped")
                return
            except TiermlError as error:
                self.log(f"model {_short(installed.running)} does not start: {error.message}")
                self.counts.start_failures += 1
                if record.guard is not None and record.guard.assigned == sha:
                    record = replace(record, guard=record.guard.start_failed())
                    self.home.save_guard(record)

    # -- an assignment -------------------------------------------------------------------
    def apply(self, assigned: Assigned) -> None:
        """Make ``assigned`` the model served, or leave the serving one when it cannot be.
        Raises what the download raised (the control plane down, a failed check); a model
        that does not start is counted, not raised."""
        manifest = self._checked_manifest(assigned)
        running = Running(manifest.version, manifest.variant, manifest.sha256)
        record = self.home.guard()
        guard = record.guard
        if guard is None or guard.assigned != running.sha256:
            serving = self.serving
            guard = StartGuard(running.sha256, serving.sha256 if serving else None)
            record = GuardRecord(guard, record.unreported_rollback)
            self.home.save_guard(record)
        if guard.rolled_back:
            return  # given up on: the rollout policy has heard, and moves the device
        if self.serving == running:
            return
        if not self.artifacts.has(running.sha256):
            self.log(f"downloading {_short(running)} ({manifest.size} bytes)")
            chunks = self.http.download(self.signer, running.sha256, max_bytes=manifest.size)
            self.artifacts.download(chunks, running.sha256, lambda p: verify_file(p, manifest))
            self.counts.downloads += 1
        path = self.artifacts.path_of(running.sha256)
        verify_file(path, manifest)  # again: a file already here may have rotted since
        try:
            self._start(Installed(running, path))
        except TiermlError as error:
            self._start_failed(record, running, error)
            return
        self.artifacts.activate(running)
        self.counts.swaps += 1
        self.log(f"serving {_short(running)}: {assigned.reason or 'assigned'}")

    def roll_back(self) -> bool:
        """The control plane asked: serve the previous model again (False: there is none,
        or it does not start)."""
        previous = self.artifacts.previous
        if previous is None:
            return False
        try:
            self._start(previous)
        except TiermlError as error:
            self.log(f"cannot roll back to {_short(previous.running)}: {error.message}")
            return False
        self.artifacts.roll_back()
        self.counts.rollbacks += 1
        self.log(f"rolled back to {_short(previous.running)} as the control plane asked")
        return True

    # -- helpers -------------------------------------------------------------------------
    def _checked_manifest(self, assigned: Assigned) -> ArtifactManifest:
        file = f"artifact {assigned.sha256[:12]}"
        signed = SignedManifest.from_dict(assigned.manifest, file=file)
        manifest = verify_manifest(signed, self.pinned, device_id=self.signer.device_id, file=file)
        said = (assigned.sha256, assigned.size, assigned.version, assigned.variant)
        if said != (manifest.sha256, manifest.size, manifest.version, manifest.variant):
            raise ArtifactVerificationError(
                ArtifactFailure.MALFORMED,
                file,
                f"Rejected {file}: the assignment and its signed manifest disagree.",
            )
        return manifest

    def _start(self, installed: Installed) -> None:
        folder = self.home.serving_dir / installed.running.sha256[:16]
        self.endpoint.start_model(installed.path, installed.running, folder)

    def _start_failed(self, record: GuardRecord, running: Running, error: TiermlError) -> None:
        assert record.guard is not None
        guard = record.guard.start_failed()
        self.counts.start_failures += 1
        self.log(
            f"model {_short(running)} failed to start ({guard.start_failures} of "
            f"{guard.limit}): {error.message}"
        )
        if not guard.rolled_back:
            self.home.save_guard(GuardRecord(guard, record.unreported_rollback))
            return
        self.home.save_guard(GuardRecord(guard, unreported_rollback=running.sha256))
        self.counts.rollbacks += 1
        active = self.artifacts.active
        if active is not None and active.running.sha256 == running.sha256:
            self.artifacts.roll_back()  # it was active before this run: go back for good
        if self.serving is None and self.artifacts.active is not None:
            try:
                self._start(self.artifacts.active)
            except TiermlError as again:
                self.log(f"the previous model does not start either: {again.message}")
        kept = self.serving
        self.log(
            f"gave up on {_short(running)} after {guard.start_failures} failed starts; "
            f"serving {_short(kept) if kept else 'nothing'}"
        )


def _short(running: Running) -> str:
    return f"v{running.version} {running.variant} ({running.sha256[:12]})"
