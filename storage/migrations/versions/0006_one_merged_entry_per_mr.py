"""At most one merged queue entry per merge request, enforced by the database

Revision ID: 0006_one_merged_entry_per_mr
Revises: 0005_slack_direct_messages

An MR is merged once. Before the lanes checked for it, an MR queued again in the very moment the
queue merged it could be recorded merged twice (the second time as "merged outside the queue").
This revision keeps each MR's first merged record, turns the later ones into cancelled entries
(each change audited), and adds a partial unique index so that a second record is refused from
now on, whatever path tries to write it.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from merge_assist.storage import types as storage_types

revision = "0006_one_merged_entry_per_mr"
down_revision = "0005_slack_direct_messages"
branch_labels = None
depends_on = None

INDEX = "uq_queue_one_merged_per_mr"
MERGED = "state = 'merged'"
REASON = "a second record of the MR's one merge (migration 0006 keeps the first)"

entries = sa.table("queue_entries", sa.column("id", sa.Integer), sa.column("project_id", sa.BigInteger),
                   sa.column("mr_iid", sa.Integer), sa.column("state", sa.String), sa.column("reason", sa.Text),
                   sa.column("updated_at", storage_types.UTCDateTime()))
audit = sa.table("audit_log", sa.column("at", storage_types.UTCDateTime()), sa.column("actor", sa.String),
                 sa.column("channel", sa.String), sa.column("action", sa.String), sa.column("target", sa.String),
                 sa.column("outcome", sa.String), sa.column("detail", sa.Text))


def upgrade() -> None:
    bind = op.get_bind()
    earlier = entries.alias("earlier")
    later_records = bind.execute(sa.select(entries.c.id, entries.c.project_id, entries.c.mr_iid).where(
        entries.c.state == "merged",
        sa.exists().where(earlier.c.project_id == entries.c.project_id, earlier.c.mr_iid == entries.c.mr_iid,
                          earlier.c.state == "merged", earlier.c.id < entries.c.id),
    )).all()
    now = datetime.now(timezone.utc)
    for entry_id, project_id, iid in later_records:
        bind.execute(entries.update().where(entries.c.id == entry_id).values(
            state="cancelled", reason=REASON, updated_at=now))
        bind.execute(audit.insert().values(at=now, actor="merge-assist", channel="system", action="transition",
                                           target=f"{project_id}!{iid}", outcome="cancelled",
                                           detail=f"merged -> cancelled: {REASON}"))
    op.create_index(INDEX, "queue_entries", ["project_id", "mr_iid"], unique=True,
                    sqlite_where=sa.text(MERGED), postgresql_where=sa.text(MERGED))


def downgrade() -> None:
    op.drop_index(INDEX, table_name="queue_entries")
