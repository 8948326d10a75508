"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 23:52:16.117620
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from merge_assist.storage import types as storage_types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('actor_gitlab_id', sa.BigInteger(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_target_at', ['target', 'at'], unique=False)

    op.create_table('lanes',
    sa.Column('project_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('target_branch', sa.String(length=255), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('lease_holder', sa.String(length=255), nullable=True),
    sa.Column('lease_token', sa.BigInteger(), nullable=False),
    sa.Column('lease_expires_at', storage_types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('project_id', 'target_branch')
    )
    op.create_table('projects',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('webhook_secret_sha256', sa.String(length=64), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_path'), ['path'], unique=False)

    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('mr_iid', sa.Integer(), nullable=False),
    sa.Column('target_branch', sa.String(length=255), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('note_id', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('tested_sha', sa.String(length=64), nullable=True),
    sa.Column('pipeline_id', sa.BigInteger(), nullable=True),
    sa.Column('merge_commit_sha', sa.String(length=64), nullable=True),
    sa.Column('enqueued_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_lane_state', ['project_id', 'target_branch', 'state', 'priority', 'enqueued_at'], unique=False)
        batch_op.create_index('ix_queue_mr', ['project_id', 'mr_iid'], unique=False)
        batch_op.create_index('uq_queue_one_active_per_mr', ['project_id', 'mr_iid'], unique=True, sqlite_where=sa.text("state IN ('queued', 'rebasing', 'waiting_pipeline', 'merging')"), postgresql_where=sa.text("state IN ('queued', 'rebasing', 'waiting_pipeline', 'merging')"))

    roles = op.create_table('roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.bulk_insert(roles, [{"name": name} for name in ("admin", "project_owner", "priority_manager", "viewer")])
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('gitlab_user_id', sa.BigInteger(), nullable=True),
    sa.Column('gitlab_username', sa.String(length=255), nullable=True),
    sa.Column('slack_user_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gitlab_user_id'),
    sa.UniqueConstraint('slack_user_id'),
    sa.UniqueConstraint('username')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_gitlab_username'), ['gitlab_username'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('received_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_received_at'), ['received_at'], unique=False)

    op.create_table('role_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=True),
    sa.Column('granted_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', storage_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'role_id', 'project_id', name='uq_role_grant')
    )
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_grants_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('role_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_grants_user_id'))

    op.drop_table('role_grants')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_received_at'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_gitlab_username'))

    op.drop_table('users')
    op.drop_table('roles')
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_queue_one_active_per_mr', sqlite_where=sa.text("state IN ('queued', 'rebasing', 'waiting_pipeline', 'merging')"), postgresql_where=sa.text("state IN ('queued', 'rebasing', 'waiting_pipeline', 'merging')"))
        batch_op.drop_index('ix_queue_mr')
        batch_op.drop_index('ix_queue_lane_state')

    op.drop_table('queue_entries')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_path'))

    op.drop_table('projects')
    op.drop_table('lanes')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_target_at')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
