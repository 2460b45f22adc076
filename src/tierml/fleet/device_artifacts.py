"""The models on a device: downloaded beside the active one, checked, then switched to.

A download goes to a temporary file in the same folder and only a complete, checked file is
renamed to its content address (``artifacts/<sha256>.onnx``); which artifact is active, and
which ran before it, is one small JSON file replaced atomically (written, fsynced, renamed).
So a kill at any moment leaves either the old model active or the new one, never half of
one, and the previous model stays on disk for a rollback. Temporary files left by a kill
are removed when the store opens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tierml.fleet.protocol import Running

TMP_PREFIX = ".download-"
STATE_FILE = "active.json"
# Checks a finished download before it may be used: raises (a typed error naming the file)
# when its bytes or its manifest do not hold.
Verifier = Callable[[Path], None]


@dataclass(frozen=True)
class Installed:
    running: Running
    path: Path


class DeviceArtifacts:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "artifacts"
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f"{TMP_PREFIX}*"):  # a download a kill interrupted
            stale.unlink(missing_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.onnx"

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def download(self, chunks: Iterable[bytes], sha256: str, verify: Verifier) -> Path:
        """Write ``chunks`` to a temporary file, check it, and only then give it its
        content address. A failed check leaves nothing behind."""
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self.folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            verify(tmp)
            final = self.path_of(sha256)
            os.replace(tmp, final)
            _fsync_dir(self.folder)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    # -- which artifact runs ------------------------------------------------------------
    def _state(self) -> dict[str, dict[str, object] | None]:
        try:
            data = json.loads((self.root / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {"active": None, "previous": None}
        return data if isinstance(data, dict) else {"active": None, "previous": None}

    def _entry(self, key: str) -> Installed | None:
        raw = self._state().get(key)
        if raw is None:
            return None
        running = Running.from_dict(raw)
        path = self.path_of(running.sha256)
        return Installed(running, path) if path.is_file() else None

    @property
    def active(self) -> Installed | None:
        return self._entry("active")

    @property
    def previous(self) -> Installed | None:
        return self._entry("previous")

    def activate(self, running: Running) -> Installed:
        """Make ``running`` (already downloaded) the active artifact; the one it replaces
        becomes the previous one. One atomic file replace."""
        if not self.has(running.sha256):
            raise FileNotFoundError(f"artifact {running.sha256} is not on this device")
        current = self.active
        if current is not None and current.running == running:
            return current
        state = {
            "active": running.to_dict(),
            "previous": current.running.to_dict() if current else None,
        }
        self._write_state(state)
        self._collect(keep={running.sha256, *(() if current is None else [current.running.sha256])})
        return Installed(running, self.path_of(running.sha256))

    def roll_back(self) -> Installed | None:
        """Switch back to the previous artifact (the active one becomes the previous);
        None when there is none to go back to."""
        previous, current = self.previous, self.active
        if previous is None:
            return None
        self._write_state(
            {
                "active": previous.running.to_dict(),
                "previous": current.running.to_dict() if current else None,
            }
        )
        return previous

    def _write_state(self, state: Mapping[str, object]) -> None:
        target = self.root / STATE_FILE
        fd, tmp_name = tempfile.mkstemp(prefix=".state-", dir=self.root)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
        _fsync_dir(self.root)

    def _collect(self, keep: set[str]) -> None:
        """Keep the active and the previous artifact; older ones go."""
        for path in self.folder.glob("*.onnx"):
            if path.stem not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    # A rename is durable once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
