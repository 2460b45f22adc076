"""The first fleet schema: signing key, enrolment tokens, devices, nonces, rollouts,
telemetry, events, commands.

Revision ID: f0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_signing_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("private_pem", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "fleet_enrollment_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "fleet_devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(100), nullable=False, unique=True),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("reported", sa.JSON(), nullable=False),
        sa.Column("running", sa.JSON(), nullable=False),
        sa.Column("assigned", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
    )
    op.create_index("ix_fleet_devices_model", "fleet_devices", ["model"])
    op.create_table(
        "fleet_models",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("stable_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "fleet_nonces",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(100), primary_key=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_fleet_nonces_seen_at", "fleet_nonces", ["seen_at"])
    op.create_table(
        "fleet_rollouts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_fleet_rollouts_model", "fleet_rollouts", ["model"])
    op.create_index("ix_fleet_rollouts_status", "fleet_rollouts", ["status"])
    op.create_table(
        "fleet_telemetry",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("batch", sa.JSON(), nullable=False),
    )
    op.create_index("ix_fleet_telemetry_received_at", "fleet_telemetry", ["received_at"])
    op.create_table(
        "fleet_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("rollout_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_fleet_events_at", "fleet_events", ["at"])
    op.create_index("ix_fleet_events_device_id", "fleet_events", ["device_id"])
    op.create_index("ix_fleet_events_rollout_id", "fleet_events", ["rollout_id"])
    op.create_table(
        "fleet_commands",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_fleet_commands_device_id", "fleet_commands", ["device_id"])


def downgrade() -> None:
    for table in (
        "fleet_commands",
        "fleet_events",
        "fleet_telemetry",
        "fleet_rollouts",
        "fleet_nonces",
        "fleet_models",
        "fleet_devices",
        "fleet_enrollment_tokens",
        "fleet_signing_keys",
    ):
        op.drop_table(table)
