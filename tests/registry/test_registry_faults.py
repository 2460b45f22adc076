"""Faults with real processes: concurrent registrations, and a build killed with SIGKILL."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from registry_backends import TIERS, open_registry
from registry_models import mlp, write_model
from tierml.registry.building import add_recipe, build_variants, list_variants
from tierml.registry.regeneration import add_version
from tierml.registry.versions import show_model

WRITERS = 2
# Each process imports everything first, then waits for the go file, so the
# registrations really overlap instead of running one after another as processes start.
REGISTER = """
import sys, time
from pathlib import Path
from tierml.api.workspace import open_workspace
from tierml.registry import Registry
from tierml.registry.regeneration import add_version
home, url, model, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
registry = Registry.open(open_workspace(home, registry_url=url))
(go.parent / f"ready-{model.stem}").touch()
while not go.exists():
    time.sleep(0.005)
print(add_version(registry, "shared", model, tiers=[]).version)
"""
# A build whose artifact write stops just before the rename: the workspace's hook writes
# the marker (so the test knows the moment has come) and sleeps until the test kills it.
BUILD_AND_PAUSE = """
import os, sys, time
from pathlib import Path
from tierml.api.workspace import open_workspace
from tierml.registry import Registry
from tierml.registry.building import build_variants
home, url, marker, tier = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]

def pause(tmp):
    marker.write_text(str(os.getpid()))
    time.sleep(120)

workspace = open_workspace(home, registry_url=url, before_artifact_rename=pause)
build_variants(Registry.open(workspace), "m", tiers=[tier])
"""


def test_concurrent_registrations_get_distinct_versions_and_none_is_lost(
    shared_url: str, tmp_path: Path
) -> None:
    home, go = tmp_path / "home", tmp_path / "go"
    open_registry(home, shared_url).close()  # migrate once, as a deployment would
    models = [write_model(mlp(seed), tmp_path / f"m{seed}.onnx") for seed in range(WRITERS)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, str(home), shared_url, str(m), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in models
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < WRITERS:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the writers never got ready"
        time.sleep(0.02)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert sorted(int(out) for out, _ in results) == list(range(1, WRITERS + 1))
    registry = open_registry(home, shared_url)
    versions = show_model(registry, "shared").versions
    assert [v.version for v in versions] == list(range(1, WRITERS + 1))
    assert {v.sha256 for v in versions} == {
        hashlib.sha256(m.read_bytes()).hexdigest() for m in models
    }  # every file landed, each under its own number
    registry.close()


def test_a_build_killed_mid_write_leaves_no_half_artifact_and_can_be_retried(
    tmp_path: Path,
) -> None:
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 'registry.db'}"
    model = write_model(mlp(0), tmp_path / "m.onnx")
    registry = open_registry(home, url)
    add_version(registry, "m", model, tiers=TIERS)
    add_recipe(registry, "m", "half", "fp16", {})
    before = set(registry.artifacts.shas())

    marker = tmp_path / "paused"
    build = subprocess.Popen(
        [sys.executable, "-c", BUILD_AND_PAUSE, str(home), url, str(marker), TIERS[0]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert build.poll() is None, "the build ended before reaching the pause"
        assert time.monotonic() < deadline, "the build never reached the artifact write"
        time.sleep(0.05)
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=30)
    assert build.returncode == -signal.SIGKILL

    found = registry.check()
    assert found.ok and found.unreferenced == ()
    assert found.temporaries == 1  # the killed write: under a temporary name only
    assert set(registry.artifacts.shas()) == before
    assert list_variants(registry, "m").variants == ()

    (built,) = build_variants(registry, "m", tiers=TIERS)
    assert built.published
    assert registry.artifacts.read(built.sha256)  # whole and checksummed
    assert registry.collect_garbage(tmp_age_s=0).removed_tmp == 1
    assert registry.check().temporaries == 0
    registry.close()
