"""SQLAlchemy models: users and roles, projects and lanes, the queue, deliveries, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from merge_assist.rules.lane_machine import ACTIVE_STATES, EntryState
from merge_assist.storage.types import UTCDateTime, utcnow

ROLE_NAMES = ("admin", "project_owner", "priority_manager", "viewer")
ACTIVE_STATES_SQL = "state IN ({})".format(", ".join(f"'{state.value}'" for state in ACTIVE_STATES))
MERGED_STATE_SQL = f"state = '{EntryState.MERGED.value}'"


class Base(DeclarativeBase):
    pass


class User(Base):
    """A person known to the bot: a local login, a GitLab identity, a Slack identity, or all."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    gitlab_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    gitlab_username: Mapped[str | None] = mapped_column(String(255), index=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    slack_notify: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    email: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Role(Base):
    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class RoleGrant(Base):
    """A role held by a user, everywhere (project_id NULL) or on one GitLab project."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role_id", "project_id", name="uq_role_grant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(BigInteger)
    granted_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ManagedProject(Base):
    """A GitLab project the bot manages; its own webhook secret is stored as a SHA-256 digest."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(String(512), index=True)
    webhook_secret_sha256: Mapped[str | None] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Lane(Base):
    """One (project, target branch): its pause switch and its lease (holder, fencing token, expiry)."""

    __tablename__ = "lanes"
    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    target_branch: Mapped[str] = mapped_column(String(255), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_holder: Mapped[str | None] = mapped_column(String(255))
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class QueueEntryRow(Base):
    __tablename__ = "queue_entries"
    __table_args__ = (
        Index("ix_queue_lane_state", "project_id", "target_branch", "state", "priority", "enqueued_at"),
        Index("ix_queue_mr", "project_id", "mr_iid"),
        Index(
            "uq_queue_one_active_per_mr", "project_id", "mr_iid", unique=True,
            sqlite_where=text(ACTIVE_STATES_SQL), postgresql_where=text(ACTIVE_STATES_SQL),
        ),
        Index(  # an MR is merged once (migration 0006)
            "uq_queue_one_merged_per_mr", "project_id", "mr_iid", unique=True,
            sqlite_where=text(MERGED_STATE_SQL), postgresql_where=text(MERGED_STATE_SQL),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(BigInteger)
    mr_iid: Mapped[int] = mapped_column(Integer)
    target_branch: Mapped[str] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_by_gitlab_id: Mapped[int | None] = mapped_column(BigInteger)
    note_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    tested_sha: Mapped[str | None] = mapped_column(String(64))
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger)
    merge_commit_sha: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """A processed webhook delivery or command, kept so a re-delivery acts once."""

    __tablename__ = "webhook_deliveries"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AuditRecord(Base):
    """Append-only: the repository only inserts; updates and deletes are refused (see audit.py)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target_at", "target", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    actor_gitlab_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class TrainCarRow(Base):
    """One car of a lane's merge train: a commit (target + MRs ahead + its riders) and its pipeline."""

    __tablename__ = "train_cars"
    __table_args__ = (Index("ix_train_cars_sha", "project_id", "commit_sha"),)
    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    target_branch: Mapped[str] = mapped_column(String(255), primary_key=True)
    car_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    side: Mapped[bool] = mapped_column(Boolean, default=False)
    after_car: Mapped[int | None] = mapped_column(Integer)
    base_sha: Mapped[str] = mapped_column(String(64))
    riders: Mapped[list[Any]] = mapped_column(JSON, default=list)
    held: Mapped[list[Any]] = mapped_column(JSON, default=list)
    suspects_proven: Mapped[bool] = mapped_column(Boolean, default=False)
    proof_pipeline: Mapped[int | None] = mapped_column(BigInteger)
    commit_sha: Mapped[str | None] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(255))
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger)
    pipeline_url: Mapped[str | None] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    source_updates: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
