"""Content-addressed artifact files: ``<root>/<sha[:2]>/<sha>``, written atomically.

A file is written to a temporary name in its final directory, fsynced and renamed, so a
reader (or a process killed mid-write) never sees half an artifact under a real name.
Every read checks the bytes against the name. Temporary files start with ``.tmp-``;
garbage collection removes them and every artifact no registry row references.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tierml.core.errors import ArtifactIntegrityError, RegistryError, Remedy
from tierml.core.workspace import ArtifactWriteHook

TMP_PREFIX = ".tmp-"
# A temporary file younger than this may belong to a build still running in another
# process; garbage collection leaves it alone.
STALE_TMP_SECONDS = 3600.0


@dataclass(frozen=True)
class Collected:
    removed: tuple[str, ...]  # sha256 of removed artifacts
    removed_tmp: int
    freed_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"removed": list(self.removed), "removed_tmp": self.removed_tmp,
                "freed": self.freed_bytes}  # fmt: skip


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Files by sha256 under ``root``. ``before_rename`` is called with the temporary file
    just before it is renamed into place (a test stops a writer there)."""

    def __init__(self, root: Path, before_rename: ArtifactWriteHook | None = None) -> None:
        self.root = root
        self.before_rename = before_rename

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256. Storing the same bytes twice is a no-op."""
        sha = sha256_of(data)
        final = self.path(sha)
        if final.is_file():
            return sha
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=final.parent)
        except OSError as exc:
            raise RegistryError(
                f"Cannot write artifacts under {self.root}: {exc.strerror}.",
                hint="Use a writable tierml home.",
                remedy=Remedy.WRITABLE_HOME,
                path=str(self.root),
            ) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if self.before_rename is not None:
                self.before_rename(Path(tmp))
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def read(self, sha: str) -> bytes:
        """The artifact's bytes, checked against its sha256."""
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(
                f"Artifact {sha[:12]} is missing from {self.root}.",
                hint="The registry database and its artifact directory are out of step; "
                "restore the directory or re-register the model.",
            ) from exc
        if sha256_of(data) != sha:
            raise ArtifactIntegrityError(
                f"Artifact {sha[:12]} at {path} is corrupt: its bytes hash to "
                f"{sha256_of(data)[:12]}.",
                hint="Restore the file from a backup or re-register the model.",
            )
        return data

    def shas(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                for f in sorted(folder.iterdir()):
                    if not f.name.startswith(TMP_PREFIX):
                        yield f.name

    def temporaries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"*/{TMP_PREFIX}*"))

    def collect(
        self, referenced: Iterable[str], *, tmp_age_s: float = STALE_TMP_SECONDS
    ) -> Collected:
        """Delete artifacts not in ``referenced`` and temporaries older than ``tmp_age_s``."""
        keep = set(referenced)
        removed, freed = [], 0
        for sha in list(self.shas()):
            if sha not in keep:
                path = self.path(sha)
                freed += path.stat().st_size
                path.unlink(missing_ok=True)
                removed.append(sha)
        now, tmp_count = time.time(), 0
        for tmp in self.temporaries():
            if now - tmp.stat().st_mtime >= tmp_age_s:
                freed += tmp.stat().st_size
                tmp.unlink(missing_ok=True)
                tmp_count += 1
        return Collected(tuple(removed), tmp_count, freed)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
