"""merge train cars

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

A lane in `train` mode tests cars (the target plus the MRs ahead plus each car's riders) in
parallel; each car's commit, pipeline and riders are kept here.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from merge_assist.storage import types as storage_types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "train_cars",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("target_branch", sa.String(length=255), nullable=False),
        sa.Column("car_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("side", sa.Boolean(), nullable=False),
        sa.Column("after_car", sa.Integer(), nullable=True),
        sa.Column("base_sha", sa.String(length=64), nullable=False),
        sa.Column("riders", sa.JSON(), nullable=False),
        sa.Column("held", sa.JSON(), nullable=False),
        sa.Column("suspects_proven", sa.Boolean(), nullable=False),
        sa.Column("proof_pipeline", sa.BigInteger(), nullable=True),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=True),
        sa.Column("pipeline_url", sa.String(length=1024), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("source_updates", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", storage_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "target_branch", "car_id"),
    )
    op.create_index("ix_train_cars_sha", "train_cars", ["project_id", "commit_sha"])


def downgrade() -> None:
    op.drop_index("ix_train_cars_sha", table_name="train_cars")
    op.drop_table("train_cars")
