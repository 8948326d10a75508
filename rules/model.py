"""Value types shared by the rules engine, the merge flow and the adapters.

Everything here is plain data: no I/O, no GitLab, Redis or SQLAlchemy types, so the merge
logic can be read and tested with in-memory ports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The states and their allowed moves live in one table: rules/lane_machine.py.
from merge_assist.rules.lane_machine import ACTIVE_STATES as ACTIVE_STATES
from merge_assist.rules.lane_machine import EntryState as EntryState


class Priority(enum.IntEnum):
    """Queue priority; a higher value merges first within a lane."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3

    @classmethod
    def parse(cls, text: str) -> "Priority":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown priority {text!r}; use one of: {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


PRIORITY_ROLES = frozenset({"admin", "project_owner", "priority_manager"})
"""Bot roles that may set a priority above normal."""




class Outcome(str, enum.Enum):
    """What a rule says about a merge request."""

    PASS = "pass"
    WAIT = "wait"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Verdict:
    """One rule's answer: pass, wait (with reason) or refuse (with reason)."""

    rule: str
    outcome: Outcome
    reason: str = ""

    @classmethod
    def passed(cls, rule: str, reason: str = "") -> "Verdict":
        return cls(rule, Outcome.PASS, reason)

    @classmethod
    def wait(cls, rule: str, reason: str) -> "Verdict":
        return cls(rule, Outcome.WAIT, reason)

    @classmethod
    def refuse(cls, rule: str, reason: str) -> "Verdict":
        return cls(rule, Outcome.REFUSE, reason)


@dataclass(frozen=True)
class Decision:
    """The combination of every rule's verdict: refuse beats wait beats pass."""

    verdicts: tuple[Verdict, ...]

    @property
    def outcome(self) -> Outcome:
        outcomes = {v.outcome for v in self.verdicts}
        if Outcome.REFUSE in outcomes:
            return Outcome.REFUSE
        if Outcome.WAIT in outcomes:
            return Outcome.WAIT
        return Outcome.PASS

    @property
    def blocking(self) -> tuple[Verdict, ...]:
        """The verdicts that decide the outcome (empty when everything passed)."""
        outcome = self.outcome
        if outcome is Outcome.PASS:
            return ()
        return tuple(v for v in self.verdicts if v.outcome is outcome)

    def explain(self) -> str:
        return "; ".join(f"{v.rule}: {v.reason}" for v in self.blocking)


@dataclass(frozen=True)
class Pipeline:
    id: int
    sha: str
    status: str
    ref: str = ""
    web_url: str = ""


@dataclass(frozen=True)
class Project:
    id: int
    path: str
    default_branch: str = "main"
    merge_method: str = "merge"  # merge | rebase_merge | ff
    only_allow_merge_if_pipeline_succeeds: bool = True
    allow_merge_on_skipped_pipeline: bool = False
    web_url: str = ""
    visibility: str = "private"  # private | internal | public


@dataclass(frozen=True)
class Approvals:
    approvals_required: int = 0
    approvals_left: int = 0
    approved_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeRequest:
    """A fresh read of a merge request; always re-read before acting on it."""

    project_id: int
    iid: int
    title: str
    author_id: int
    author_username: str
    source_branch: str
    target_branch: str
    state: str  # opened | closed | merged | locked
    sha: str
    draft: bool = False
    detailed_merge_status: str = "mergeable"
    has_conflicts: bool = False
    blocking_discussions_resolved: bool = True
    labels: tuple[str, ...] = ()
    head_pipeline: Pipeline | None = None
    rebase_in_progress: bool = False
    merge_error: str | None = None
    web_url: str = ""
    merge_commit_sha: str | None = None
    squash: bool = False


@dataclass(frozen=True)
class Actor:
    """Who asked, as the GitLab user they act as, and through which channel."""

    gitlab_user_id: int | None
    username: str
    channel: str = "gitlab"  # gitlab | slack | api | cli | system


@dataclass(frozen=True)
class LaneKey:
    """A lane is one (project, target branch)."""

    project_id: int
    target_branch: str

    def __str__(self) -> str:
        return f"{self.project_id}:{self.target_branch}"


@dataclass
class QueueEntry:
    """One merge request in a lane, as stored."""

    id: int
    project_id: int
    mr_iid: int
    target_branch: str
    priority: Priority
    state: EntryState
    requested_by: str
    enqueued_at: datetime
    updated_at: datetime
    reason: str = ""
    attempts: int = 0
    tested_sha: str | None = None
    pipeline_id: int | None = None
    note_id: int | None = None
    requested_by_gitlab_id: int | None = None  # who queued it; `requested_by` is their name, for display

    @property
    def lane(self) -> LaneKey:
        return LaneKey(self.project_id, self.target_branch)


@dataclass(frozen=True)
class RuleContext:
    """What a rule sees when it judges a merge request."""

    project: Project
    merge_request: MergeRequest
    approvals: Approvals
    options: dict[str, Any]
    now: datetime
    entry: QueueEntry | None = None
    lane_paused: bool = False


@dataclass(frozen=True)
class CommandHelp:
    """Help a command ships with (model: Prow's HelpProvider)."""

    name: str
    summary: str
    usage: str
    who_can_use: str
    examples: tuple[str, ...] = ()
