"""Queue entries and lanes: implements rules.ports.QueueStore and rules.ports.LaneLeases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from merge_assist.rules.errors import AlreadyQueuedError, IllegalTransition, LeaseLost
from merge_assist.rules.events import log_event
from merge_assist.rules.lane_machine import Mover, allowed
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import ACTIVE_STATES, Actor, EntryState, LaneKey, Priority, QueueEntry
from merge_assist.rules.ports import Refused
from merge_assist.storage.db import Database
from merge_assist.storage.models import AuditRecord, Lane, ManagedProject, QueueEntryRow
from merge_assist.storage.types import utcnow

ACTIVE = [s.value for s in ACTIVE_STATES]
UPDATABLE_FIELDS = {"tested_sha", "pipeline_id", "merge_commit_sha", "attempts", "note_id"}



class AlreadyQueued(AlreadyQueuedError):
    def __init__(self, entry: QueueEntry) -> None:
        super().__init__(entry)
        self.args = (f"!{entry.mr_iid} is already queued ({entry.state.value})",)


def _entry(row: QueueEntryRow) -> QueueEntry:
    return QueueEntry(
        id=row.id, project_id=row.project_id, mr_iid=row.mr_iid, target_branch=row.target_branch,
        priority=Priority(row.priority), state=EntryState(row.state), requested_by=row.requested_by,
        enqueued_at=row.enqueued_at, updated_at=row.updated_at, reason=row.reason, attempts=row.attempts,
        tested_sha=row.tested_sha, pipeline_id=row.pipeline_id, note_id=row.note_id,
        requested_by_gitlab_id=row.requested_by_gitlab_id,
    )


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's rowcount; Session.execute is typed as Result)."""
    return int(result.rowcount)


def _audit(actor: Actor | None, action: str, row: QueueEntryRow, outcome: str, detail: str) -> AuditRecord:
    who = actor or Actor(None, "merge-assist", "system")
    return AuditRecord(actor=who.username, actor_gitlab_id=who.gitlab_user_id, channel=who.channel, action=action,
                       target=f"{row.project_id}!{row.mr_iid}", outcome=outcome, detail=detail[:4000])


def _merge_order() -> tuple[Any, ...]:
    return (QueueEntryRow.priority.desc(), QueueEntryRow.enqueued_at, QueueEntryRow.id)


class QueueRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_entry(self, project_id: int, iid: int, target_branch: str, priority: Priority,
                  requested_by: str, note_id: int | None = None, *, channel: str = "gitlab",
                  actor_gitlab_id: int | None = None) -> QueueEntry:
        try:
            with self._db.session() as session:
                self._ensure_lane(session, project_id, target_branch)
                row = QueueEntryRow(
                    project_id=project_id, mr_iid=iid, target_branch=target_branch, priority=int(priority),
                    state=EntryState.QUEUED.value, requested_by=requested_by, note_id=note_id,
                    requested_by_gitlab_id=actor_gitlab_id,
                )
                session.add(row)
                session.add(AuditRecord(
                    actor=requested_by, actor_gitlab_id=actor_gitlab_id, channel=channel, action="enqueue",
                    target=f"{project_id}!{iid}", outcome="queued", detail=f"priority {priority.label}",
                ))
                session.flush()
                return _entry(row)
        except IntegrityError:
            existing = self.active_entry_for(project_id, iid)
            if existing is None:
                raise
            raise AlreadyQueued(existing) from None

    def active_entry_for(self, project_id: int, iid: int) -> QueueEntry | None:
        with self._db.session() as session:
            row = session.scalar(select(QueueEntryRow).where(
                QueueEntryRow.project_id == project_id, QueueEntryRow.mr_iid == iid,
                QueueEntryRow.state.in_(ACTIVE),
            ))
            return _entry(row) if row else None

    def latest_entry_for(self, project_id: int, iid: int) -> QueueEntry | None:
        with self._db.session() as session:
            row = session.scalar(select(QueueEntryRow).where(
                QueueEntryRow.project_id == project_id, QueueEntryRow.mr_iid == iid,
            ).order_by(QueueEntryRow.id.desc()).limit(1))
            return _entry(row) if row else None

    def get_entry(self, entry_id: int) -> QueueEntry | None:
        with self._db.session() as session:
            row = session.get(QueueEntryRow, entry_id)
            return _entry(row) if row else None

    def lane_entries(self, lane: LaneKey) -> list[QueueEntry]:
        with self._db.session() as session:
            rows = session.scalars(select(QueueEntryRow).where(
                QueueEntryRow.project_id == lane.project_id, QueueEntryRow.target_branch == lane.target_branch,
                QueueEntryRow.state.in_(ACTIVE),
            ).order_by(*_merge_order()))
            return [_entry(r) for r in rows]

    def all_entries(self, *, active_only: bool = False, limit: int = 500) -> list[QueueEntry]:
        query = select(QueueEntryRow).order_by(QueueEntryRow.id.desc()).limit(limit)
        if active_only:
            query = query.where(QueueEntryRow.state.in_(ACTIVE))
        with self._db.session() as session:
            return [_entry(r) for r in session.scalars(query)]

    def transition(self, entry_id: int, expected: EntryState, to: EntryState, reason: str = "", *,
                   fence: int | None = None, mover: Mover = Mover.LANE, actor: Actor | None = None,
                   **fields: Any) -> QueueEntry | Refused:
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise TypeError(f"cannot set {sorted(unknown)} on a queue entry")
        if not allowed(expected, to, mover):
            raise IllegalTransition(f"{mover.value} may not move an entry from {expected.value} to {to.value}")
        guard = [QueueEntryRow.id == entry_id, QueueEntryRow.state == expected.value]
        if fence is not None:
            guard.append(exists().where(Lane.project_id == QueueEntryRow.project_id,
                                        Lane.target_branch == QueueEntryRow.target_branch,
                                        Lane.lease_token == fence))
        try:
            with self._db.session() as session:
                moved = _rowcount(session.execute(update(QueueEntryRow).where(*guard).values(
                    state=to.value, reason=reason, updated_at=utcnow(), **fields,
                ).execution_options(synchronize_session=False)))
                row = session.get(QueueEntryRow, entry_id, populate_existing=True)
                if row is None:
                    raise KeyError(entry_id)
                if not moved:
                    if fence is not None and not self._holds_fence(session, row, fence):
                        raise LeaseLost(f"lane {row.project_id}:{row.target_branch} lease moved on")
                    return Refused(_entry(row), f"the entry is {row.state}, not {expected.value}")
                # Written in the same transaction as the change, so the audit trail can never miss one.
                session.add(_audit(actor, "transition", row, to.value,
                                   f"{expected.value} -> {to.value}" + (f": {reason}" if reason else "")))
                session.flush()
                entry = _entry(row)
        except IntegrityError:
            current = self.get_entry(entry_id)
            if to is not EntryState.MERGED or current is None:
                raise
            # uq_queue_one_merged_per_mr: the lanes check first; this is the backstop for any path that did not.
            return Refused(current, "another entry already recorded this merge request merged", already_merged=True)
        if expected != to:
            log_event("state", project=entry.project_id, mr=entry.mr_iid, lane=str(entry.lane), state=to.value,
                      previous=expected.value)
        return entry

    @staticmethod
    def _holds_fence(session: Any, row: QueueEntryRow, fence: int) -> bool:
        lane = session.get(Lane, (row.project_id, row.target_branch), populate_existing=True)
        return lane is not None and lane.lease_token == fence

    def set_priority(self, entry_id: int, priority: Priority, actor: Actor | None = None) -> QueueEntry | Refused:
        with self._db.session() as session:
            moved = _rowcount(session.execute(update(QueueEntryRow).where(
                QueueEntryRow.id == entry_id, QueueEntryRow.state.in_(ACTIVE),
            ).values(priority=int(priority), updated_at=utcnow()).execution_options(synchronize_session=False)))
            row = session.get(QueueEntryRow, entry_id, populate_existing=True)
            if row is None:
                raise KeyError(entry_id)
            if not moved:
                return Refused(_entry(row), f"the entry is {row.state}")
            session.add(_audit(actor, "priority", row, "ok", priority.label))
            session.flush()
            return _entry(row)

    def waiting_lanes(self) -> list[LaneKey]:
        with self._db.session() as session:
            rows = session.execute(select(QueueEntryRow.project_id, QueueEntryRow.target_branch).distinct()
                                   .where(QueueEntryRow.state.in_(ACTIVE)))
            return [LaneKey(p, b) for p, b in rows]

    def lanes_for(self, project_id: int, *, sha: str | None, mr_iid: int | None) -> list[LaneKey]:
        """Lanes of the project with an active entry testing `sha` or for MR `mr_iid`."""
        matches = []
        if sha:
            matches.append(QueueEntryRow.tested_sha == sha)
        if mr_iid:
            matches.append(QueueEntryRow.mr_iid == int(mr_iid))
        if not matches:
            return []
        with self._db.session() as session:
            rows = session.execute(select(QueueEntryRow.project_id, QueueEntryRow.target_branch).distinct().where(
                QueueEntryRow.project_id == project_id, QueueEntryRow.state.in_(ACTIVE), or_(*matches)))
            return [LaneKey(p, b) for p, b in rows]

    # Lanes: pause switch and lease.

    def set_lane_paused(self, lane: LaneKey, paused: bool) -> None:
        with self._db.session() as session:
            self._ensure_lane(session, lane.project_id, lane.target_branch).paused = paused

    def lane_paused(self, lane: LaneKey) -> bool:
        """Paused itself, or its whole project is."""
        with self._db.session() as session:
            row = session.get(Lane, (lane.project_id, lane.target_branch))
            project = session.get(ManagedProject, lane.project_id)
            return bool(row and row.paused) or bool(project and project.paused)

    def acquire(self, lane: LaneKey, holder: str, ttl_seconds: float) -> int | None:
        """Renew our lease, or take a free or expired one (a new fencing token); None if held.

        Each is one conditional UPDATE in one transaction; the lane row is created only the
        first time a lane is seen.
        """
        now = utcnow()
        expires = now + timedelta(seconds=ttl_seconds)
        key = and_(Lane.project_id == lane.project_id, Lane.target_branch == lane.target_branch)
        take = update(Lane).where(key, or_(
            Lane.lease_holder.is_(None), Lane.lease_expires_at.is_(None), Lane.lease_expires_at <= now,
            Lane.lease_holder == holder,
        )).values(lease_holder=holder, lease_expires_at=expires, lease_token=Lane.lease_token + 1)
        with self._db.session() as session:
            renewed = _rowcount(session.execute(update(Lane).where(key, Lane.lease_holder == holder, Lane.lease_expires_at > now)
                                      .values(lease_expires_at=expires)))
            previous = None if renewed else session.execute(
                select(Lane.lease_holder, Lane.lease_expires_at).where(key)).first()
            if not renewed and not _rowcount(session.execute(take)):
                if session.get(Lane, (lane.project_id, lane.target_branch)) is not None:
                    return None  # held by another worker
                self._ensure_lane(session, lane.project_id, lane.target_branch)
                session.flush()
                if not _rowcount(session.execute(take)):
                    return None
            if previous is not None and previous[0] not in (None, holder):
                METRICS.lease_takeover(str(lane))  # its holder died or stalled past the expiry
            return session.scalar(select(Lane.lease_token).where(key))

    def release(self, lane: LaneKey, holder: str) -> None:
        with self._db.session() as session:
            session.execute(update(Lane).where(
                Lane.project_id == lane.project_id, Lane.target_branch == lane.target_branch,
                Lane.lease_holder == holder,
            ).values(lease_holder=None, lease_expires_at=None))

    @staticmethod
    def _ensure_lane(session: Session, project_id: int, target_branch: str) -> Lane:
        lane = session.get(Lane, (project_id, target_branch))
        if lane is None:
            lane = Lane(project_id=project_id, target_branch=target_branch, paused=False, lease_token=0)
            try:
                with session.begin_nested():
                    session.add(lane)
            except IntegrityError:
                lane = session.get(Lane, (project_id, target_branch))
        assert lane is not None, "the lane row exists once its insert conflicted"
        return lane
