"""Reading the audit log for people: filters (project, actor, action, time) and a cursor.

Targets name their project first (`42`, `42!7` for an MR, `42:main` for a lane), which is how a
record is matched to a project without a column of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from merge_assist.storage.audit import AuditEntry
from merge_assist.storage.db import Database
from merge_assist.storage.models import AuditRecord


@dataclass(frozen=True)
class AuditFilter:
    projects: frozenset[int] | None = None  # None: every project and the records of no project
    actor: str | None = None  # a name, or a GitLab user id given as digits
    action: str | None = None  # exact, or a prefix ending in `*` (e.g. `command:*`)
    since: datetime | None = None
    until: datetime | None = None


def _project_clause(projects: frozenset[int]) -> Any:
    clauses = []
    for project_id in sorted(projects):
        clauses += [AuditRecord.target == str(project_id), AuditRecord.target.like(f"{project_id}!%"),
                    AuditRecord.target.like(f"{project_id}:%")]
    return or_(*clauses) if clauses else AuditRecord.id < 0


def audit_page(db: Database, filters: AuditFilter, *, before_id: int | None,
               limit: int) -> tuple[list[AuditEntry], int | None]:
    """Newest first; returns the page and the cursor (an id) for the next one, if any."""
    query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    if filters.projects is not None:
        query = query.where(_project_clause(filters.projects))
    if filters.actor:
        by_name = AuditRecord.actor == filters.actor
        query = query.where(or_(by_name, AuditRecord.actor_gitlab_id == int(filters.actor))
                            if filters.actor.isdigit() and len(filters.actor) < 19 else by_name)
    if filters.action:
        query = query.where(AuditRecord.action.like(filters.action[:-1].replace("%", r"\%") + "%", escape="\\")
                            if filters.action.endswith("*") else AuditRecord.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditRecord.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditRecord.at < filters.until)
    with db.session() as session:
        rows = list(session.scalars(query))
    page = [AuditEntry(r.id, r.at, r.actor, r.channel, r.action, r.target, r.outcome, r.detail) for r in rows[:limit]]
    return page, (page[-1].id if len(rows) > limit else None)
