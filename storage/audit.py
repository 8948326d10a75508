"""The append-only audit log: records can be added and read, never changed or removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from merge_assist.rules.model import Actor
from merge_assist.storage.db import Database
from merge_assist.storage.models import AuditRecord


class AuditLogImmutable(RuntimeError):
    """Raised when anything tries to update or delete an audit record."""


@event.listens_for(AuditRecord, "before_update")
def _refuse_update(_mapper: Any, _connection: Any, target: AuditRecord) -> None:
    raise AuditLogImmutable(f"audit record {target.id} cannot be updated")


@event.listens_for(AuditRecord, "before_delete")
def _refuse_delete(_mapper: Any, _connection: Any, target: AuditRecord) -> None:
    raise AuditLogImmutable(f"audit record {target.id} cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: Any) -> None:
    if (state.is_update or state.is_delete) and any(
        m.class_ is AuditRecord for m in state.all_mappers
    ):
        raise AuditLogImmutable("the audit log cannot be updated or deleted")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    channel: str
    action: str
    target: str
    outcome: str
    detail: str


class AuditRepository:
    """Implements rules.ports.AuditLog. It has no update or delete on purpose."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, actor: Actor, action: str, target: str, outcome: str, detail: str = "") -> None:
        with self._db.session() as session:
            session.add(AuditRecord(
                actor=actor.username, actor_gitlab_id=actor.gitlab_user_id, channel=actor.channel,
                action=action, target=target, outcome=outcome, detail=detail[:4000],
            ))

    def entries(self, *, target: str | None = None, action: str | None = None, limit: int = 200) -> list[AuditEntry]:
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if target is not None:
            query = query.where(AuditRecord.target == target)
        if action is not None:
            query = query.where(AuditRecord.action == action)
        with self._db.session() as session:
            return [
                AuditEntry(r.id, r.at, r.actor, r.channel, r.action, r.target, r.outcome, r.detail)
                for r in session.scalars(query)
            ]
