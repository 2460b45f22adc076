"""Models on the device: a download becomes usable only whole and checked, the switch is
atomic, the previous model stays for a rollback, and a kill mid-download changes nothing."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierml.fleet.device_artifacts import DeviceArtifacts, file_sha256
from tierml.fleet.protocol import Running


def blob(n: int) -> tuple[bytes, str]:
    data = bytes([n]) * (100_000 + n)
    return data, hashlib.sha256(data).hexdigest()


def check_sha(expected: str):
    def verify(path: Path) -> None:
        if file_sha256(path) != expected:
            raise ValueError(f"{path.name}: bytes do not match")

    return verify


def install(store: DeviceArtifacts, n: int, version: int) -> Running:
    data, sha = blob(n)
    store.download([data[:5000], data[5000:]], sha, check_sha(sha))
    return Running(version, "base", sha)


def test_switching_keeps_the_previous_and_rolls_back(tmp_path: Path) -> None:
    store = DeviceArtifacts(tmp_path)
    assert store.active is None and store.roll_back() is None
    v1 = install(store, 1, 1)
    store.activate(v1)
    v2 = install(store, 2, 2)
    store.activate(v2)
    assert store.active.running == v2 and store.previous.running == v1
    v3 = install(store, 3, 3)
    store.activate(v3)
    assert not store.has(v1.sha256)  # only the active and the previous are kept
    back = store.roll_back()
    assert back is not None and back.running == v2
    reopened = DeviceArtifacts(tmp_path)
    assert reopened.active.running == v2 and reopened.previous.running == v3


def test_a_download_that_fails_its_check_leaves_nothing(tmp_path: Path) -> None:
    store = DeviceArtifacts(tmp_path)
    data, sha = blob(4)
    with pytest.raises(ValueError, match="do not match"):
        store.download([data[:-1] + b"\x00"], sha, check_sha(sha))
    assert not store.has(sha) and list(store.folder.iterdir()) == []


DOWNLOADER = """
import sys, time
from pathlib import Path
from tierml.fleet.device_artifacts import DeviceArtifacts
store = DeviceArtifacts(Path(sys.argv[1]))
def chunks():
    for i in range(10_000):
        if i == 3:
            print("writing", flush=True)
        yield b"x" * 4096
        time.sleep(0.001)
store.download(chunks(), "f" * 64, lambda path: None)
"""


def test_a_kill_9_mid_download_leaves_the_old_model_active(tmp_path: Path) -> None:
    store = DeviceArtifacts(tmp_path)
    v1 = install(store, 1, 1)
    store.activate(v1)
    proc = subprocess.Popen(
        [sys.executable, "-c", DOWNLOADER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    assert any(p.name.startswith(".download-") for p in store.folder.iterdir())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    after = DeviceArtifacts(tmp_path)
    assert after.active is not None and after.active.running == v1
    assert not after.has("f" * 64)
    assert [p.name for p in after.folder.iterdir()] == [f"{v1.sha256}.onnx"]
