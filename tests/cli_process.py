"""Running the `tierml` command with its own home: in this process (its parsing, the API
call, its rendering and its error line, without a new interpreter each time), or in the
background as a new process for what must outlive the call (a deployment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tierml.cli.main import app, error_line
from tierml.core.errors import TiermlError


def tierml(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """`tierml ARGS` with ``TIERML_HOME=home``: its exit code, standard output and standard
    error as a process's (a library error: its one line, exit 2). tests/cli/test_cli.py and
    test_hints.py run the real entry point as a new process."""
    argv = [str(a) for a in args]
    env = {"TIERML_HOME": str(home), "COLUMNS": "200"}
    result = CliRunner().invoke(app, argv, env=env, catch_exceptions=True)
    code, err = result.exit_code, result.stderr
    exc = result.exception
    if isinstance(exc, TiermlError):
        code, err = 2, err + error_line(exc, argv) + "\n"
    elif exc is not None and not isinstance(exc, SystemExit):
        code = 1
        err += "".join(traceback.format_exception(exc))
    return subprocess.CompletedProcess(["tierml", *argv], code, result.stdout, err)


def deploy_in_background(
    home: Path, bundle: Path, *args: object
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`tierml deploy BUNDLE --local --format json [args]` started as a process, once its
    tiers serve: the process and the state file it wrote (each tier's address)."""
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
