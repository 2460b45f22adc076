"""Telemetry into the control plane's store, each batch counted once.

A device uploads until the control plane acknowledges, so the same batch can arrive twice
(a lost acknowledgement, two control-plane processes, a retry after a restart). The store
keys batches by (device, sequence) and inserts with "on conflict do nothing": a repeat is
acknowledged again and stored once, on SQLite and PostgreSQL alike, without a read first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tierml.control.schema import TelemetryRow
from tierml.fleet.protocol import TelemetryBatch
from tierml.registry.database import reading, writing


@dataclass(frozen=True)
class Ingested:
    acked: tuple[int, ...]  # every sequence number received: stored now or before
    new: int  # how many were stored now

    def to_dict(self) -> dict[str, object]:
        return {"acked": list(self.acked), "new": self.new}


def ingest(
    engine: Engine, device_id: str, batches: Sequence[TelemetryBatch], now: datetime
) -> Ingested:
    rows = [
        {"device_id": device_id, "seq": b.seq, "received_at": now, "batch": b.to_dict()}
        for b in batches
    ]
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(TelemetryRow)
        .on_conflict_do_nothing(index_elements=["device_id", "seq"])
        .returning(TelemetryRow.seq)  # only the rows inserted now come back
    )
    stored: list[int] = []
    if rows:
        with writing(engine) as session:
            stored = list(session.scalars(statement, rows))
    return Ingested(tuple(sorted({b.seq for b in batches})), len(stored))


@dataclass(frozen=True)
class DeviceTotals:
    batches: int
    requests: int
    errors: int
    dropped: int  # batches the device dropped before uploading (as it reported)


def device_totals(engine: Engine, device_id: str) -> DeviceTotals:
    """What the control plane holds for one device, summed over its batches."""
    with reading(engine) as session:
        batches = session.scalars(
            select(TelemetryRow.batch).where(TelemetryRow.device_id == device_id)
        ).all()
        count = session.scalar(
            select(func.count())
            .select_from(TelemetryRow)
            .where(TelemetryRow.device_id == device_id)
        )
    return DeviceTotals(
        batches=int(count or 0),
        requests=sum(int(b["requests"]) for b in batches),
        errors=sum(int(b["errors"]) for b in batches),
        dropped=sum(int(b.get("dropped_before", 0)) for b in batches),
    )
