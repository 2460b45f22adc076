"""Versions record their input specification: how dynamic dimensions resolve, and the
real input arrays' artifact.

Revision ID: r0002
Revises: r0001
Create Date: 2027-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: versions registered before this revision recorded no specification.
    op.add_column("versions", sa.Column("input_spec", sa.JSON(), nullable=True))
    op.add_column("versions", sa.Column("inputs_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("inputs_sha256")
        batch.drop_column("input_spec")
