"""Running the real `tierml` command in a new process, with its own home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def tierml(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierml", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(home), "COLUMNS": "200"},
    )


def deploy_in_background(
    home: Path, bundle: Path, *args: object
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`tierml deploy BUNDLE --local --format json [args]` started in the background, once
    its tiers serve: the process and the state file it wrote (each tier's address)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierml", "deploy", str(bundle), "--local", "--format", "json",
         *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TIERML_HOME": str(home)},
    )  # fmt: skip
    state = bundle / "running.json"
    deadline = time.monotonic() + 60
    while not state.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(err)
        assert time.monotonic() < deadline, "the deployment never wrote its state"
        time.sleep(0.1)
    return proc, json.loads(state.read_text())
