"""Slack direct messages: the requester's GitLab user id on queue entries; the opt-in on users

Revision ID: 0005_slack_direct_messages
Revises: 0004_accounts

Entries queued before this revision have no requester id and get no direct message.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_slack_direct_messages"
down_revision = "0004_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_entries") as batch_op:
        batch_op.add_column(sa.Column("requested_by_gitlab_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("slack_notify", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("slack_notify")
    with op.batch_alter_table("queue_entries") as batch_op:
        batch_op.drop_column("requested_by_gitlab_id")
