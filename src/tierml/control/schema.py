"""The control plane's tables: its signing key, enrolment tokens, devices, the nonces their
requests used, rollouts, telemetry, events and commands for devices.

They live in the registry's database (one store: SQLite by default, PostgreSQL for several
control-plane processes) under their own Alembic revisions (``control/migrations``, version
table ``alembic_version_fleet``). Two constraints carry the correctness of several
processes: a nonce is stored once per device (a replayed request loses the insert), and
telemetry is keyed by (device, sequence) (an upload acknowledged twice is counted once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class FleetBase(DeclarativeBase):
    pass


class SigningKeyRow(FleetBase):
    """The control plane's Ed25519 key, shared by every process serving the fleet (in
    production it belongs in a KMS or HSM; here the database is the one shared place)."""

    __tablename__ = "fleet_signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[str] = mapped_column(String(100))  # base64 of the raw 32 bytes
    created_at: Mapped[datetime] = mapped_column(DateTime)


class EnrollmentTokenRow(FleetBase):
    __tablename__ = "fleet_enrollment_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # never the token
    label: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))  # what the enrolled device will serve
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class DeviceRow(FleetBase):
    __tablename__ = "fleet_devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200), index=True)  # the model it serves
    public_key: Mapped[str] = mapped_column(String(100), unique=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reported: Mapped[dict[str, Any]] = mapped_column(JSON)  # battery, network, memory, ops …
    running: Mapped[dict[str, Any]] = mapped_column(JSON)  # what it said it runs
    assigned: Mapped[dict[str, Any]] = mapped_column(JSON)  # what it should run, and why
    previous: Mapped[dict[str, Any]] = mapped_column(JSON)  # what it ran before (rollback)


class NonceRow(FleetBase):
    __tablename__ = "fleet_nonces"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class FleetModelRow(FleetBase):
    """A model the fleet serves and its stable version: what a device not in a rollout's
    current stage runs (a completed rollout moves it)."""

    __tablename__ = "fleet_models"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    stable_version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class RolloutRow(FleetBase):
    __tablename__ = "fleet_rollouts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # target, stages, abort criteria
    state: Mapped[dict[str, Any]] = mapped_column(JSON)  # the rollout policy's state
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class TelemetryRow(FleetBase):
    __tablename__ = "fleet_telemetry"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    batch: Mapped[dict[str, Any]] = mapped_column(JSON)


class EventRow(FleetBase):
    __tablename__ = "fleet_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    kind: Mapped[str] = mapped_column(String(50))
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    rollout_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class CommandRow(FleetBase):
    __tablename__ = "fleet_commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(50))  # check_in_now, roll_back
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
