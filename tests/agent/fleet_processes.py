"""Real processes for the agent's end-to-end tests: `tierml serve` over a workspace with a
registered model and its variants, and `tierml agent` processes on device profile files."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from quick_workspace import quick_workspace
from registry_models import mlp, write_eval, write_model
from tierml import api
from tierml.core.workspace import Workspace

TIERS = ("raspberry-pi-4",)
MODEL = "m"
HIDDEN = 1024  # ~70 KB of weights: a download a slowed link takes seconds over
PLUGGED = """name = "{name}"
profile = "raspberry-pi-4"
memory_mb = 512
precisions = ["fp32", "fp16", "int8"]
battery = 0.9
charging = true
network = "wifi"
bandwidth_mbps = 40.0
free_memory_mb = 300
"""


def unplugged(text: str) -> str:
    return (
        text.replace("battery = 0.9", "battery = 0.1")
        .replace("charging = true", "charging = false")
        .replace('network = "wifi"', 'network = "lte"')
    )


def registered_workspace(root: Path) -> Workspace:
    """``m`` v1 with variants ``half`` (fp16) and ``small`` (int8): on charger a device gets
    the most accurate, unplugged the smallest."""
    ws = quick_workspace(root / "home")
    model = mlp(0, hidden=HIDDEN)
    path = write_model(model, root / "m.onnx")
    data = write_eval(model, root / "eval.npz", (16,))
    api.registry.add_model(ws, MODEL, api.ModelInput(path),
                           api.registry.AddModelOptions(eval_data=data, tiers=TIERS))  # fmt: skip
    for name, transform in (("half", "fp16"), ("small", "int8-dynamic")):
        api.registry.add_recipe(ws, MODEL, name, api.registry.RecipeOptions(transform))
    api.registry.build_variants(ws, MODEL, tiers=TIERS)
    np.savez(root / "x.npz", x=np.random.default_rng(0).standard_normal((8, 16)).astype("f4"))
    return ws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`tierml serve` on a fixed port, so it can be stopped and started again there."""

    def __init__(self, ws: Workspace, log: Path, *extra: str) -> None:
        self.ws, self.log_path = ws, log
        self.extra = extra  # more `tierml serve` options
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Served:
        args = [sys.executable, "-m", "tierml", "serve", "--port", str(self.port),
                "--format", "json", "--tick-s", "0.5", *self.extra]  # fmt: skip
        with self.log_path.open("a") as err:
            self.proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, "TIERML_HOME": str(self.ws.home)},
            )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while not select.select([self.proc.stdout], [], [], 0.1)[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"tierml serve did not start:\n{self.log_path.read_text()}")
        assert json.loads(self.proc.stdout.readline())["url"].endswith(f":{self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def token(self, label: str) -> str:
        return api.fleet.create_token(self.ws, MODEL, label).token

    def telemetry(self, device_id: str) -> dict[int, dict[str, Any]]:
        """The batches the control plane stored for a device, by sequence number."""
        engine = create_engine(f"sqlite:///{self.ws.home / 'registry' / 'registry.db'}")
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT seq, batch FROM fleet_telemetry WHERE device_id = :d"),
                    {"d": device_id},
                ).all()
        finally:
            engine.dispose()
        return {int(seq): json.loads(b) if isinstance(b, str) else b for seq, b in rows}

    def device(self, device_id: str) -> dict[str, Any]:
        (found,) = [d for d in api.fleet.list_devices(self.ws).devices if d.id == device_id]
        return found.to_dict()


class Agent:
    """`tierml agent` as a device runs it, with its own home and profile file."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.home = root / f"{name}-home"
        self.profile = root / f"{name}.toml"
        self.profile.write_text(PLUGGED.format(name=name))
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(
        self, url: str, *args: object, token: str | None = None, check_in_s: float = 0.5
    ) -> Agent:
        argv = [sys.executable, "-m", "tierml", "agent", "--control-plane", url,
                "--profile", str(self.profile), "--home", str(self.home), "--format", "json",
                "--check-in-s", str(check_in_s), "--telemetry-s", "0.5",
                *map(str, args)]  # fmt: skip
        if token:
            argv += ["--token", token]
        with self.log_path.open("a") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        return self

    def status(self) -> dict[str, Any]:
        try:
            found = json.loads((self.home / "agent.json").read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) and found.get("pid") == self.pid else {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_for(self, what: str, check: Callable[[dict[str, Any]], bool], timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status and check(status):
                return status
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the agent exited waiting for {what}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {self.status()}\n{self.log()}")

    def serving(self) -> dict[str, Any] | None:
        return self.status().get("serving")

    def unplug(self) -> None:
        self.profile.write_text(unplugged(self.profile.read_text()))

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def stop(self) -> dict[str, Any]:
        """SIGTERM, as a device's service manager stops it; its final report."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, self.log()
        self.proc = None
        return dict(json.loads(out))

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
