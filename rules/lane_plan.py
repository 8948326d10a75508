"""The lane planner: `plan(snapshot) → action`, pure and table-tested (model: Prow Tide's sync).

The executor (rules/flow.py) reads the lane and the head entry's merge request into a
`LaneSnapshot`, asks `plan` what to do, carries the action out with a compare-and-set
transition, and asks again. The planner never performs I/O; when it needs the rules' verdict,
which costs GitLab reads, it asks for it with `CheckRules` and the executor plans again with the
decision filled in.
"""

from __future__ import annotations

from dataclasses import dataclass

from merge_assist.rules.model import Decision, EntryState, MergeRequest, Outcome, Project, QueueEntry

POLL_SECONDS = 2.0
MAX_MERGE_ATTEMPTS = 3
MID_ACTION = (EntryState.REBASING, EntryState.MERGING)
SETTLING_STATUSES = frozenset({"unchecked", "checking", "preparing", "approvals_syncing",
                               "cannot_be_merged_recheck"})


@dataclass(frozen=True)
class LaneSnapshot:
    """What the planner sees: the head entry, a fresh read of its MR, and (once asked for) the
    rules' decision."""

    entry: QueueEntry
    mr: MergeRequest
    project: Project
    decision: Decision | None = None


@dataclass(frozen=True)
class Action:
    """Base of every action; `reason` is what the entry's state records (shown to people)."""

    reason: str


@dataclass(frozen=True)
class Wait(Action):
    """Nothing to do now; look again after `seconds` (None: when an event wakes the lane)."""

    seconds: float | None = None


@dataclass(frozen=True)
class CheckRules(Action):
    """Evaluate the merge rules and plan again with the decision."""


@dataclass(frozen=True)
class RecordMerged(Action):
    """The MR is merged already (by us before a crash, or outside the queue)."""

    merge_commit_sha: str | None = None


@dataclass(frozen=True)
class Cancel(Action):
    """The MR was closed: it leaves the queue."""


@dataclass(frozen=True)
class Fail(Action):
    """It cannot merge: leaves the queue with the reason, and the author is told."""

    why: str
    """A short, fixed label for the metrics (`reason` is free text)."""


@dataclass(frozen=True)
class Rebase(Action):
    """Ask GitLab to rebase the MR onto its target branch."""


@dataclass(frozen=True)
class Validate(Action):
    """Record that `sha` is the head being validated (its pipeline decides)."""

    sha: str


@dataclass(frozen=True)
class NoteReason(Action):
    """Keep waiting, but record a new reason (rules said wait)."""


@dataclass(frozen=True)
class Merge(Action):
    """Merge exactly `sha` (moves the entry to merging first)."""

    sha: str


def may_follow_cached_read(action: Action, entry: QueueEntry) -> bool:
    """Whether `action`, planned from a cached read of the MR, may be carried out as is.

    A cached read only ever keeps an entry waiting: it may start validating a queued entry, record
    a new reason to wait, or wait for the next event. Anything else (merge, rebase, fail, cancel,
    record a merge, look again soon) is planned again from a fresh read, so a stale "pipeline
    passed", stale approvals or a stale head are never acted on.
    """
    if isinstance(action, Wait):
        return action.seconds is None
    if isinstance(action, Validate):
        return entry.state is EntryState.QUEUED
    return isinstance(action, NoteReason)


def head_of(entries: list[QueueEntry]) -> QueueEntry | None:
    """The entry the lane works on: an entry in the middle of a rebase or a merge keeps its turn;
    otherwise merge order (priority, then first come) decides, so a more urgent entry may
    overtake one that only waits for its pipeline."""
    if not entries:
        return None
    return next((entry for entry in entries if entry.state in MID_ACTION), entries[0])


def plan(snapshot: LaneSnapshot) -> Action:
    entry, mr, project = snapshot.entry, snapshot.mr, snapshot.project
    if mr.state == "merged":
        how = "merged" if entry.state is EntryState.MERGING else "merged outside the queue"
        return RecordMerged(how, mr.merge_commit_sha)
    if mr.state != "opened":
        return Cancel(f"the merge request was {mr.state}")
    if entry.state is EntryState.REBASING:
        if mr.rebase_in_progress:
            return Wait("GitLab is rebasing it", POLL_SECONDS)
        if mr.merge_error and entry.tested_sha not in (None, mr.sha):
            # Someone pushed while GitLab rebased (the lane keeps the head it asked to rebase in
            # tested_sha): the failure says nothing about the new head, which is validated afresh.
            return Validate(f"new commits arrived during the rebase; checking {mr.sha[:12]}", mr.sha)
        if mr.merge_error:
            return Fail(f"GitLab could not rebase it ({mr.merge_error}). Rebase locally and push.", "rebase_failed")
        return Validate(f"rebased; waiting for the pipeline of {mr.sha[:12]}", mr.sha)
    if mr.detailed_merge_status in SETTLING_STATUSES:
        return Wait("GitLab is still checking whether it can merge", POLL_SECONDS)
    if project.merge_method in ("ff", "rebase_merge") and mr.detailed_merge_status == "need_rebase":
        if entry.attempts >= MAX_MERGE_ATTEMPTS:
            return Fail(f"the target branch kept moving ({entry.attempts} rebases). Try again later.", "target_moving")
        return Rebase(f"bringing it up to date with {mr.target_branch}")
    decision = snapshot.decision
    if decision is None:
        return CheckRules("checking the rules")
    if decision.outcome is Outcome.REFUSE:
        return Fail(decision.explain(), "rule_refused")
    if entry.state is EntryState.QUEUED or entry.tested_sha != mr.sha:
        moved = entry.tested_sha is not None and entry.tested_sha != mr.sha
        why = (f"the source branch moved to {mr.sha[:12]}; validating again" if moved
               else f"validating {mr.sha[:12]}")
        return Validate(why, mr.sha)
    if decision.outcome is Outcome.WAIT:
        why = decision.explain()
        return NoteReason(why) if entry.reason != why else Wait(why)
    return Merge(f"merging {mr.sha[:12]}", mr.sha)
