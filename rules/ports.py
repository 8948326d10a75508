"""Ports: the typed interfaces the core needs from the outside world.

Adapters (python-gitlab, Redis, in-process) and storage (SQLAlchemy) implement these; the merge
flow and rules only ever see these Protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol

from merge_assist.rules.lane_machine import Mover

from merge_assist.rules.model import (
    Approvals,
    Actor,
    EntryState,
    LaneKey,
    MergeRequest,
    Pipeline,
    Priority,
    Project,
    QueueEntry,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class GitLabPort(Protocol):
    """What the bot asks of GitLab. Errors are `rules.errors` exceptions."""

    def current_user(self) -> tuple[int, str]:
        """(id, username) of the bot's own token."""
        ...

    def get_project(self, project_id: int) -> Project: ...

    def get_project_by_path(self, path: str) -> Project | None:
        """The project at `group/name` (chat commands name MRs by URL), or None."""
        ...

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequest:
        """A fresh read, including `rebase_in_progress` and `merge_error`."""
        ...

    def cached_merge_request(self, project_id: int, iid: int) -> MergeRequest | None:
        """The latest fresh read of the MR, if no webhook about the project's merge requests came
        since and it is recent; else None. Never a basis for merging (see rules.lane_plan)."""
        ...

    def get_approvals(self, project_id: int, iid: int) -> Approvals: ...

    def get_access_level(self, project_id: int, user_id: int) -> int:
        """Effective (inherited included) access level; 0 for non-members."""
        ...

    def get_merge_access_level(self, project_id: int, branch: str) -> int | None:
        """Lowest access level allowed to merge into a protected branch; None if unprotected."""
        ...

    def get_file(self, project_id: int, path: str, ref: str) -> str | None:
        """Raw file content at ref, or None when the file does not exist."""
        ...

    def get_branch_sha(self, project_id: int, branch: str) -> str: ...

    def cached_branch_sha(self, project_id: int, branch: str) -> str | None:
        """The latest fresh read of the branch's head, unless a webhook about the project's merge
        requests or pushes came since or it is old; else None."""
        ...

    def get_pipeline(self, project_id: int, pipeline_id: int) -> Pipeline: ...

    def rebase(self, project_id: int, iid: int) -> None:
        """Start GitLab's asynchronous rebase."""
        ...

    def merge(self, project_id: int, iid: int, sha: str, squash: bool | None = None) -> MergeRequest:
        """Merge now with `sha`; raises HeadMoved (409) or NotMergeable (405/422)."""
        ...

    def post_note(self, project_id: int, iid: int, body: str) -> int:
        """Post a comment on the MR; returns the note id."""
        ...

    def list_open_merge_requests(self, project_id: int, target_branch: str) -> list[MergeRequest]:
        """Every open MR into `target_branch` (one paginated read: a train's whole lane at once)."""
        ...

    def cached_open_merge_requests(self, project_id: int, target_branch: str) -> list[MergeRequest] | None:
        """The latest fresh `list_open_merge_requests`, on the same terms as `cached_branch_sha`."""
        ...

    def pipelines_for_sha(self, project_id: int, sha: str) -> list[Pipeline]:
        """Pipelines of a commit, newest first."""
        ...

    def cancel_pipeline(self, project_id: int, pipeline_id: int) -> None: ...

    def retry_pipeline(self, project_id: int, pipeline_id: int) -> None: ...

    def award_emoji(self, project_id: int, iid: int, note_id: int | None, name: str) -> None:
        """Award an emoji on a note (or the MR when note_id is None); duplicates are fine."""
        ...


@dataclass(frozen=True)
class Refused:
    """A compare-and-set that found the entry elsewhere: plan again from `entry`."""

    entry: QueueEntry | None
    reason: str
    already_merged: bool = False
    """A move to `merged` refused because another entry already recorded the MR's one merge."""


class QueueStore(Protocol):
    """Persisted queue entries and lane state."""

    def active_entry_for(self, project_id: int, iid: int) -> QueueEntry | None: ...

    def add_entry(
        self, project_id: int, iid: int, target_branch: str, priority: Priority, requested_by: str,
        note_id: int | None = None, *, channel: str = "gitlab", actor_gitlab_id: int | None = None,
    ) -> QueueEntry:
        """Queue an MR and audit it in one transaction, keeping `actor_gitlab_id` as the requester's
        id; raises if it is already queued."""
        ...

    def get_entry(self, entry_id: int) -> QueueEntry | None: ...

    def lane_entries(self, lane: LaneKey) -> list[QueueEntry]:
        """Active entries of the lane in merge order (priority, then enqueue time)."""
        ...

    def transition(
        self, entry_id: int, expected: EntryState, to: EntryState, reason: str = "", *,
        fence: int | None = None, mover: Mover = Mover.LANE, actor: Actor | None = None, **fields: Any,
    ) -> QueueEntry | Refused:
        """Compare-and-set: move the entry from `expected` to `to` (and set fields like
        tested_sha) with its audit record in one transaction. Returns the moved entry, or
        `Refused` when the entry is no longer in `expected`; raises `LeaseLost` when `fence` is
        not the lane's current fencing token, and `IllegalTransition` for a move that
        rules.lane_machine's table does not allow `mover` to make."""
        ...

    def set_priority(self, entry_id: int, priority: Priority, actor: Actor | None = None) -> QueueEntry | Refused:
        """Change an active entry's priority (audited); `Refused` once it has finished."""
        ...

    def waiting_lanes(self) -> list[LaneKey]:
        """Lanes with at least one active entry."""
        ...


class LaneLeases(Protocol):
    def acquire(self, lane: LaneKey, holder: str, ttl_seconds: float) -> int | None:
        """Take or renew the lane's lease; returns a fencing token, or None if held elsewhere."""
        ...

    def release(self, lane: LaneKey, holder: str) -> None: ...


class AuditLog(Protocol):
    def record(
        self, actor: Actor, action: str, target: str, outcome: str, detail: str = "",
    ) -> None:
        """Append one audit record (never updated or deleted)."""
        ...


class ReadEpochs(Protocol):
    """Invalidation of cached GitLab reads, shared by every process (adapters/read_cache.py): a value
    cached under a scope is used only while the scope's epoch is the one it was read under."""

    def current(self, scope: str) -> str: ...

    def bump(self, scope: str) -> None:
        """Something under `scope` may have changed: every process drops what it cached for it."""
        ...


class EventQueue(Protocol):
    """Work handed from the web face to workers."""

    publish_waits_on_network: bool
    """True when `publish` does network I/O, so async callers must run it in a thread."""

    def publish(self, event: dict[str, Any]) -> None: ...

    def consume(
        self, handler: Callable[[dict[str, Any]], None], *, stop: Callable[[], bool], consumer: str = "",
    ) -> None:
        """Run handler for each event until stop() is true; ack only after handler returns."""
        ...
