"""The device's durable telemetry buffer: a bounded SQLite queue that survives a kill.

A batch is durable once ``put`` returns (WAL, ``synchronous=FULL``: the commit is on disk),
and leaves only when the control plane acknowledged its sequence number, so a device that
is offline for a day or killed mid-upload loses nothing it stored. The queue holds at most
``max_batches``; past that its drop policy decides: drop the oldest (fresh data matters
more for a running fleet) or refuse the new one. Every drop is counted, and the count
travels with the next batch uploaded (``dropped_before``), so the control plane knows
exactly what it will never see.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

from tierml.fleet.protocol import TelemetryBatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class DropPolicy(StrEnum):
    DROP_OLDEST = "drop-oldest"
    REFUSE_NEW = "refuse-new"


class TelemetryQueue:
    def __init__(
        self, path: Path, *, max_batches: int = 10_000, policy: DropPolicy = DropPolicy.DROP_OLDEST
    ) -> None:
        if max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, got {max_batches}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_batches, self.policy = max_batches, policy
        # Autocommit: each statement group below runs in its own explicit transaction.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # a returned put is on disk
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _counter(self, db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set(self, db: sqlite3.Connection, name: str, value: int) -> None:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def put(self, batch: TelemetryBatch) -> TelemetryBatch | None:
        """Store ``batch`` under the next sequence number (its own ``seq`` is replaced) and
        the drops since the last stored batch; None when the queue is full and refuses it."""
        with self._transaction() as db:
            stored = int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
            dropped = self._counter(db, "dropped_since_last")
            if stored >= self.max_batches:
                if self.policy is DropPolicy.REFUSE_NEW:
                    self._set(db, "dropped_since_last", dropped + 1)
                    self._set(db, "dropped_total", self._counter(db, "dropped_total") + 1)
                    return None
                excess = stored - self.max_batches + 1
                oldest = db.execute(
                    "SELECT seq, body FROM batches ORDER BY seq LIMIT ?", (excess,)
                ).fetchall()
                db.execute("DELETE FROM batches WHERE seq <= ?", (oldest[-1][0],))
                # The dropped batches' own counts of earlier drops go on with the next.
                carried = sum(int(json.loads(body).get("dropped_before", 0)) for _, body in oldest)
                dropped += excess + carried
                self._set(db, "dropped_total", self._counter(db, "dropped_total") + excess)
            seq = self._counter(db, "last_seq") + 1
            kept = replace(batch, seq=seq, dropped_before=dropped)
            db.execute(
                "INSERT INTO batches (seq, body) VALUES (?, ?)", (seq, json.dumps(kept.to_dict()))
            )
            self._set(db, "last_seq", seq)
            self._set(db, "dropped_since_last", 0)
        return kept

    def pending(self, limit: int = 100) -> list[TelemetryBatch]:
        """The oldest ``limit`` batches not yet acknowledged, oldest first."""
        rows = self._db.execute(
            "SELECT body FROM batches ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [TelemetryBatch.from_dict(json.loads(body)) for (body,) in rows]

    def ack(self, seqs: list[int]) -> int:
        """Forget the batches the control plane acknowledged; how many were still here."""
        if not seqs:
            return 0
        with self._transaction() as db:
            marks = ",".join("?" * len(seqs))
            done = db.execute(f"DELETE FROM batches WHERE seq IN ({marks})", seqs).rowcount
        return int(done)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])

    @property
    def dropped_total(self) -> int:
        return self._counter(self._db, "dropped_total")

    @property
    def last_seq(self) -> int:
        return self._counter(self._db, "last_seq")
