"""Content-addressed artifacts: atomic writes, checksums on every read, garbage collection."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tierml.core.errors import ArtifactIntegrityError
from tierml.registry.artifacts import TMP_PREFIX, ArtifactStore


def test_put_names_the_file_by_its_sha256_and_read_returns_the_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(b"weights")
    assert sha == hashlib.sha256(b"weights").hexdigest()
    assert store.path(sha) == tmp_path / sha[:2] / sha
    assert store.read(sha) == b"weights"
    assert store.put(b"weights") == sha  # same bytes, same file
    assert list(store.shas()) == [sha] and store.temporaries() == []


def test_a_corrupted_or_missing_artifact_is_reported_not_returned(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(b"weights")
    store.path(sha).write_bytes(b"weighs")
    with pytest.raises(ArtifactIntegrityError, match="is corrupt"):
        store.read(sha)
    store.path(sha).unlink()
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        store.read(sha)


def test_collect_removes_unreferenced_artifacts_and_stale_temporaries(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    keep, drop = store.put(b"keep"), store.put(b"drop")
    old_tmp = store.path(keep).parent / f"{TMP_PREFIX}old"
    new_tmp = store.path(keep).parent / f"{TMP_PREFIX}new"
    old_tmp.write_bytes(b"half")
    new_tmp.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(old_tmp, (two_hours_ago, two_hours_ago))
    done = store.collect({keep})
    assert done.removed == (drop,) and done.removed_tmp == 1
    assert list(store.shas()) == [keep]
    # A young temporary may be a build running in another process: left alone.
    assert store.temporaries() == [new_tmp]
