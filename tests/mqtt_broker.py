"""Private Mosquitto brokers for the fleet's MQTT tests: 127.0.0.1, a free port, messages
persisted in a temporary folder, so a test can kill and restart one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO_ENV = "TIERML_TEST_MOSQUITTO"


def mosquitto_binary() -> str:
    found = os.environ.get(MOSQUITTO_ENV) or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).is_file():
        pytest.fail(
            f"mosquitto is not installed: run the tests through ./dev test, which installs "
            f"Debian's mosquitto (or set {MOSQUITTO_ENV})",
            pytrace=False,
        )
    return found


class Broker:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "autosave_interval 1\n"
            f"log_dest file {folder}/broker.log\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.folder / "broker.log"
        return path.read_text() if path.exists() else ""
