"""Start a bundle's tier processes on 127.0.0.1, wait until they serve, tear them down.

Each remote tier is one process (``python -m tierml.runtime.tier_server``) in its own
process group; ``stop`` sends SIGTERM to every group, then SIGKILL to what is left, and
an ``atexit`` hook does the same if the owner forgets. Tier processes also exit when
their parent dies, so not even a SIGKILL of the owner leaves orphans serving.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType

from tierml.core.errors import DeploymentError, TiermlError
from tierml.runtime.batching import DEFAULT_WINDOW_MS, check_batching
from tierml.runtime.bundle import Bundle, load_bundle
from tierml.runtime.tier_server import TierConfig
from tierml.runtime.transport import GrpcTransport, Transport

STATE_FILE = "running.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """The tier processes of one bundle. Use as a context manager, or start()/stop().

    ``addresses`` says where each remote tier listens; ``connect`` reaches one (gRPC):
    ``DeviceClient(bundle_dir, dep.addresses, connect=dep.connect)``.
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike[str],
        *,
        seed: int = 0,
        timeout_s: float = 5.0,
        workers: int = 8,
        pin_cores: bool = True,
        max_batch: int = 1,
        batch_window_ms: float = DEFAULT_WINDOW_MS,
    ) -> None:
        """``max_batch`` > 1: every remote tier batches requests for one partition arriving
        within ``batch_window_ms`` of the first, up to that many rows (see batching)."""
        check_batching(max_batch, batch_window_ms)
        self.max_batch, self.batch_window_ms = max_batch, batch_window_ms
        self.root = Path(bundle_dir)
        self.bundle: Bundle = load_bundle(self.root)
        self.seed, self.timeout_s, self.workers = seed, timeout_s, workers
        self.pin_cores = pin_cores
        self.remote = [t for t in self.bundle.tiers if t.name != self.bundle.origin]
        self.addresses: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._work = Path(tempfile.mkdtemp(prefix="tierml-deploy-"))
        self._registered = False

    @staticmethod
    def connect(tier: str, address: str) -> Transport:
        return GrpcTransport(tier, address)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, wait_s: float = 60.0) -> Deployment:
        self.addresses = {t.name: f"127.0.0.1:{free_port()}" for t in self.remote}
        if not self._registered:
            atexit.register(self.stop)
            self._registered = True
        try:
            for tier in self.remote:
                self._spawn(tier.name)
            deadline = time.monotonic() + wait_s
            for tier in self.remote:
                self._wait_ready(tier.name, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        # The tiers' configs, ready files and logs: nothing outlives the deployment.
        shutil.rmtree(self._work, ignore_errors=True)

    def kill(self, tier: str) -> None:
        """SIGKILL one tier (a fault, for experiments): no goodbye, no drain."""
        proc = self.procs.pop(tier)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, tier: str, wait_s: float = 30.0) -> None:
        """Start a killed tier again on its old address."""
        self._spawn(tier)
        self._wait_ready(tier, time.monotonic() + wait_s)

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_state(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Where each tier listens, for `tierml infer` in another process."""
        target = Path(path) if path else self.root / STATE_FILE
        state = {
            "bundle": str(self.root.resolve()),
            "addresses": self.addresses,
            "pids": {t: p.pid for t, p in self.procs.items()},
            "owner": os.getpid(),
        }
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, target)
        return target

    # -- internals ------------------------------------------------------------------------
    def _spawn(self, tier: str) -> None:
        spec = self.bundle.tier(tier)
        self._work.mkdir(parents=True, exist_ok=True)  # again after a stop
        ready = self._work / f"{tier}.ready"
        ready.unlink(missing_ok=True)
        cpus = spec.cpus
        if not cpus and self.pin_cores and hasattr(os, "sched_getaffinity"):
            # Remote tiers share the cores the client does not use first (the last ones).
            avail = sorted(os.sched_getaffinity(0))
            cpus = (avail[-1],) if len(avail) > 1 else ()
        config = TierConfig(
            bundle=str(self.root.resolve()),
            tier=tier,
            peers=self.addresses,
            ready_file=str(ready),
            port=int(self.addresses[tier].rsplit(":", 1)[1]),
            threads=spec.threads,
            cpus=cpus,
            seed=self.seed,
            workers=self.workers,
            timeout_s=self.timeout_s,
            max_batch=self.max_batch,
            batch_window_ms=self.batch_window_ms,
        )
        path = self._work / f"{tier}.json"
        path.write_text(json.dumps({**asdict(config), "cpus": list(config.cpus)}))
        log = open(self._work / f"{tier}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[tier] = subprocess.Popen(
            [sys.executable, "-m", "tierml.runtime.tier_server", str(path)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def _wait_ready(self, tier: str, deadline: float) -> None:
        ready = self._work / f"{tier}.ready"
        proc = self.procs[tier]
        while not ready.exists():
            if proc.poll() is not None:
                raise DeploymentError(
                    f"Tier '{tier}' exited with code {proc.returncode} before serving: "
                    f"{self.log(tier)[-400:].strip()}",
                    hint="See the tier's log; check the bundle's partitions load.",
                )
            if time.monotonic() > deadline:
                raise DeploymentError(f"Tier '{tier}' did not start in time.")
            time.sleep(0.02)
        transport = GrpcTransport(tier, self.addresses[tier])
        try:
            while True:
                try:
                    if transport.ready(timeout_s=1.0):
                        return
                except TiermlError:
                    pass
                if time.monotonic() > deadline:
                    raise DeploymentError(f"Tier '{tier}' started but is not ready.")
                time.sleep(0.05)
        finally:
            transport.close()

    def log(self, tier: str) -> str:
        path = self._work / f"{tier}.log"
        return path.read_text(errors="replace") if path.exists() else ""
