"""Fuzz cases in worker processes that a crash or a hang cannot take down.

Each worker runs one case at a time: ``target(job, workdir)``, a module-level function,
in a spawned process with a capped address space (so a runaway allocation fails there, not
on the host) and its stdout and stderr sent to /dev/null (ONNX Runtime logs there). A
worker that dies, or overruns the per-case time limit, is killed and replaced; its case is
reported as a crash or a hang.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

Target = Callable[[Any, Path], Any]


@dataclass(frozen=True)
class Finished:
    job: Any
    result: Any  # what the target returned; None after a crash or a hang
    failure: str = ""  # "crash" or "hang"
    error: str = ""  # what happened to the worker


def _worker_main(conn: Connection, target: Target, memory_mb: int) -> None:
    import resource

    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    workdir = Path(tempfile.mkdtemp(prefix="tierml-fuzz."))
    try:
        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            conn.send(target(job, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    job: Any = None
    deadline: float = 0.0


class WorkerPool:
    def __init__(self, target: Target, size: int, timeout: float, memory_mb: int) -> None:
        self.target = target
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.context = multiprocessing.get_context("spawn")
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main, args=(child, self.target, self.memory_mb), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def idle(self) -> _Worker | None:
        return next((w for w in self.workers if w.job is None), None)

    @property
    def busy(self) -> bool:
        return any(w.job is not None for w in self.workers)

    def submit(self, worker: _Worker, job: Any) -> None:
        worker.job = job
        worker.deadline = time.monotonic() + self.timeout
        worker.conn.send(job)

    def collect(self) -> list[Finished]:
        """Wait until at least one busy worker finishes, dies or overruns its time limit."""
        busy = [w for w in self.workers if w.job is not None]
        if not busy:
            return []
        first_deadline = min(w.deadline for w in busy)
        ready = wait([w.conn for w in busy], timeout=max(0.0, first_deadline - time.monotonic()))
        done: list[Finished] = []
        for w in busy:
            if w.conn in ready:
                try:
                    done.append(Finished(w.job, w.conn.recv()))
                    w.job = None
                    continue
                except (EOFError, ConnectionResetError):
                    w.process.join(5)
                    failure, error = "crash", f"worker exited with code {w.process.exitcode}"
            elif time.monotonic() >= w.deadline:
                failure, error = "hang", f"no answer within {self.timeout:g} s"
            else:
                continue
            done.append(Finished(w.job, None, failure, error))
            self._replace(w)
        return done

    def _replace(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._start()

    def close(self) -> None:
        for w in self.workers:
            w.conn.close()  # the worker's recv() ends: it cleans up and exits
        for w in self.workers:
            w.process.join(10)
            if w.process.is_alive():
                w.process.kill()
