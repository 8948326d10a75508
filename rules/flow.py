"""The lane driver: moves the head of a lane through the persisted merge state machine.

queued → (rebasing) → waiting_pipeline → merging → merged, or failed / cancelled with a reason.
Every transition is committed (with its audit record) before the next side effect, and every
step starts from a fresh read of the merge request, so a worker killed anywhere resumes from the
stored state: an entry found in `merging` whose MR is already merged is recorded as merged, never
merged again; GitLab's `sha` check makes a repeated merge call safe.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Protocol

from merge_assist.rules.engine import RuleEngine, RuleOptions
from merge_assist.rules.errors import GitLabError, HeadMoved, LeaseLost, NotMergeable, RebaseRefused, TransientGitLabError
from merge_assist.rules.feedback import Feedback
from merge_assist.rules.events import log_event
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import (
    Approvals, EntryState, LaneKey, MergeRequest, Outcome, Project, QueueEntry, RuleContext,
)
from merge_assist.rules.ports import Clock, GitLabPort, LaneLeases, QueueStore

log = logging.getLogger("merge_assist.flow")

CONTINUE = -1.0
"""A step result meaning: look at the lane again now."""
POLL_SECONDS = 2.0
BUSY_RETRY_SECONDS = 1.0
TRANSIENT_RETRY_SECONDS = 15.0
MAX_STEPS_PER_DRIVE = 25
MAX_MERGE_ATTEMPTS = 3
MID_ACTION = (EntryState.REBASING, EntryState.MERGING)
SETTLING_STATUSES = {"unchecked", "checking", "preparing", "approvals_syncing", "cannot_be_merged_recheck"}



class ConfigProvider(Protocol):
    def options_for(self, project: Project, mr: MergeRequest | None = None) -> RuleOptions:
        """Effective rule options for the project (reporting a broken config on `mr`)."""
        ...


class PauseSwitch(Protocol):
    def lane_paused(self, lane: LaneKey) -> bool: ...


class Store(QueueStore, LaneLeases, PauseSwitch, Protocol):
    """The queue repository: entries, leases and the pause switch."""


@dataclass
class FlowDeps:
    gitlab: GitLabPort
    store: Store
    engine: RuleEngine
    config: ConfigProvider
    clock: Clock
    feedback: Feedback


def rule_context(deps: FlowDeps, project: Project, mr: MergeRequest, entry: QueueEntry | None,
                 lane_paused: bool = False) -> RuleContext:
    """The context rules judge; approvals are only fetched when GitLab says some are missing."""
    approvals = Approvals()
    if mr.detailed_merge_status == "not_approved":
        approvals = deps.gitlab.get_approvals(project.id, mr.iid)
    return RuleContext(project=project, merge_request=mr, approvals=approvals, options={},
                       now=deps.clock.now(), entry=entry, lane_paused=lane_paused)


class LaneDriver:
    """Drives lanes one step at a time under a lease; safe to run in many processes at once."""

    def __init__(self, deps: FlowDeps, holder: str, lease_seconds: float = 60.0) -> None:
        self.deps = deps
        self.holder = holder
        self.lease_seconds = lease_seconds

    @contextlib.contextmanager
    def _lease(self, lane: LaneKey) -> Iterator[int | None]:
        """The lane's fencing token while this worker holds its lease (None: another one does)."""
        store = self.deps.store
        fence = store.acquire(lane, self.holder, self.lease_seconds)
        if fence is not None:
            log_event("lease", level=logging.DEBUG, lane=str(lane), holder=self.holder, action="acquired", fence=fence)
        try:
            yield fence
        finally:
            if fence is not None:
                log_event("lease", level=logging.DEBUG, lane=str(lane), holder=self.holder, action="releasing")
                store.release(lane, self.holder)

    def drive(self, lane: LaneKey) -> float | None:
        """Advance the lane as far as it goes now; returns seconds until it wants a look again."""
        with self._lease(lane) as fence:
            if fence is None:
                return BUSY_RETRY_SECONDS
            try:
                for _ in range(MAX_STEPS_PER_DRIVE):
                    entries = self.deps.store.lane_entries(lane)
                    if not entries:
                        return None
                    # Priority decides, except that an entry in the middle of a rebase or a merge
                    # keeps its turn: a more urgent one may overtake one that waits for its pipeline.
                    head = next((e for e in entries if e.state in MID_ACTION), entries[0])
                    wake = self._step(head, fence)
                    if wake != CONTINUE:
                        return wake
                return POLL_SECONDS
            except LeaseLost:
                log.warning("lane %s: lease lost to another worker; leaving the lane to it", lane)
                return None
            except TransientGitLabError as exc:
                log.warning("lane %s: GitLab unavailable (%s); retrying in %ss", lane, exc, TRANSIENT_RETRY_SECONDS)
                return TRANSIENT_RETRY_SECONDS

    def job_failed(self, lane: LaneKey, sha: str, job_name: str) -> None:
        """A required job of the pipeline testing the head entry failed: fail the entry now.

        GitLab reports a failed job while the rest of its pipeline still runs; waiting for the
        pipeline to end would only make the author wait longer for the same answer.
        """
        with self._lease(lane) as fence:
            if fence is None:
                return
            entry = next((e for e in self.deps.store.lane_entries(lane)
                          if e.state is EntryState.WAITING_PIPELINE and e.tested_sha == sha), None)
            if entry is None:
                return
            mr = self.deps.gitlab.get_merge_request(entry.project_id, entry.mr_iid)
            if mr.sha != sha:
                return  # a newer push is being tested; this job no longer matters
            project = self.deps.gitlab.get_project(entry.project_id)
            try:
                self._fail(entry, fence, project, mr, f"job `{job_name}` failed in the pipeline for {sha[:12]}. "
                           "Fix it and push, or retry the job.", why="job_failed")
            except LeaseLost:
                return

    # -- one step ---------------------------------------------------------------------------

    def _step(self, entry: QueueEntry, fence: int) -> float | None:
        gitlab, store = self.deps.gitlab, self.deps.store
        mr = gitlab.get_merge_request(entry.project_id, entry.mr_iid)
        project = gitlab.get_project(entry.project_id)
        if mr.state == "merged":
            how = "merged" if entry.state is EntryState.MERGING else "merged outside the queue"
            self._finish_merged(entry, fence, mr.merge_commit_sha, how)
            return CONTINUE
        if mr.state != "opened":
            store.transition(entry.id, EntryState.CANCELLED, f"the merge request was {mr.state}", fence=fence)
            return CONTINUE
        if entry.state is EntryState.REBASING:
            if mr.rebase_in_progress:
                return POLL_SECONDS
            if mr.merge_error:
                return self._fail(entry, fence, project, mr,
                                  f"GitLab could not rebase it ({mr.merge_error}). Rebase locally and push.",
                                  why="rebase_failed")
            entry = store.transition(entry.id, EntryState.WAITING_PIPELINE,
                                     f"rebased; waiting for the pipeline of {mr.sha[:12]}", fence=fence,
                                     tested_sha=mr.sha)
        if mr.detailed_merge_status in SETTLING_STATUSES:
            return POLL_SECONDS
        if self._needs_rebase(project, mr):
            return self._rebase(entry, fence, project, mr)
        options = self.deps.config.options_for(project, mr)
        context = rule_context(self.deps, project, mr, entry, store.lane_paused(entry.lane))
        decision = self.deps.engine.check_merge(context, options)
        if decision.outcome is Outcome.REFUSE:
            return self._fail(entry, fence, project, mr, decision.explain(), context, options, why="rule_refused")
        if entry.state is EntryState.QUEUED or entry.tested_sha != mr.sha:
            reason = (f"the source branch moved to {mr.sha[:12]}; validating again"
                      if entry.tested_sha and entry.tested_sha != mr.sha else f"validating {mr.sha[:12]}")
            entry = store.transition(entry.id, EntryState.WAITING_PIPELINE, reason, fence=fence, tested_sha=mr.sha)
        if decision.outcome is Outcome.WAIT:
            why = decision.explain()
            if entry.reason != why:
                store.transition(entry.id, entry.state, why, fence=fence)
            return None
        return self._merge(entry, fence, project, mr, context, options)

    @staticmethod
    def _needs_rebase(project: Project, mr: MergeRequest) -> bool:
        return project.merge_method in ("ff", "rebase_merge") and mr.detailed_merge_status == "need_rebase"

    def _rebase(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest) -> float | None:
        if entry.attempts >= MAX_MERGE_ATTEMPTS:
            return self._fail(entry, fence, project, mr,
                              f"the target branch kept moving ({entry.attempts} rebases). Try again later.",
                              why="target_moving")
        self.deps.store.transition(entry.id, EntryState.REBASING, f"bringing it up to date with {mr.target_branch}",
                                   fence=fence, attempts=entry.attempts + 1)
        try:
            self.deps.gitlab.rebase(project.id, mr.iid)
        except RebaseRefused as exc:
            return self._fail(entry, fence, project, mr, f"GitLab would not rebase it: {exc.message}", why="rebase_refused")
        return POLL_SECONDS

    def _merge(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest,
               context: RuleContext, options: RuleOptions) -> float | None:
        store = self.deps.store
        if entry.state is EntryState.WAITING_PIPELINE:  # since its last change: close enough for a dashboard
            METRICS.pipeline_wait(_seconds_since(entry.updated_at, self.deps.clock.now()))
        entry = store.transition(entry.id, EntryState.MERGING, f"merging {mr.sha[:12]}", fence=fence,
                                 tested_sha=mr.sha)
        self.deps.engine.before_merge(context, options)
        squash = _merge_setting(options, "squash")
        try:
            result = self.deps.gitlab.merge(project.id, mr.iid, sha=mr.sha, squash=squash)
        except HeadMoved:
            store.transition(entry.id, EntryState.WAITING_PIPELINE,
                             "the source branch moved just before merging; validating again", fence=fence)
            return CONTINUE
        except NotMergeable as exc:
            attempts = entry.attempts + 1
            if attempts >= MAX_MERGE_ATTEMPTS:
                return self._fail(entry, fence, project, mr,
                                  f"GitLab refused the merge {attempts} times ({exc.status}: {exc.message}).",
                                  why="merge_refused")
            store.transition(entry.id, EntryState.QUEUED,
                             f"GitLab refused the merge ({exc.status}); checking again", fence=fence, attempts=attempts)
            return CONTINUE
        if result.state != "merged":
            result = self.deps.gitlab.get_merge_request(project.id, mr.iid)
        if result.state != "merged":
            store.transition(entry.id, EntryState.QUEUED, "GitLab accepted the merge but did not merge; checking again",
                             fence=fence, attempts=entry.attempts + 1)
            return CONTINUE
        self._finish_merged(entry, fence, result.merge_commit_sha, "merged", context, options)
        return CONTINUE

    def _finish_merged(self, entry: QueueEntry, fence: int, sha: str | None, how: str,
                       context: RuleContext | None = None, options: RuleOptions | None = None) -> None:
        self.deps.store.transition(entry.id, EntryState.MERGED, how, fence=fence, merge_commit_sha=sha)
        METRICS.merged("queue" if how == "merged" else "outside")
        log_event("merged", project=entry.project_id, mr=entry.mr_iid, lane=str(entry.lane), how=how, sha=sha)
        if how == "merged":
            METRICS.command_to_merge(_seconds_since(entry.enqueued_at, self.deps.clock.now()))
        if context is not None:
            self.deps.engine.after_merge(context, sha, options)
        if how == "merged":
            self.deps.feedback.merged(entry.project_id, entry.mr_iid, sha, entry.target_branch)

    def _fail(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest, reason: str,
              context: RuleContext | None = None, options: RuleOptions | None = None, *, why: str) -> float:
        """Fail the entry; `why` is the short metrics label for `reason`."""
        self.deps.store.transition(entry.id, EntryState.FAILED, reason, fence=fence)
        METRICS.failed(why)
        log_event("failed", level=logging.WARNING, project=entry.project_id, mr=entry.mr_iid, lane=str(entry.lane),
                  reason=why)
        context = context or rule_context(self.deps, project, mr, entry)
        self.deps.engine.merge_failed(context, reason, options)
        self.deps.feedback.failed(entry.project_id, entry.mr_iid, reason)
        return CONTINUE


def _seconds_since(moment: datetime, now: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (now - moment).total_seconds())


def _merge_setting(options: Mapping[str, Mapping[str, Any]], key: str) -> Any:
    return (options.get("merge") or {}).get(key)


__all__ = ["LaneDriver", "FlowDeps", "ConfigProvider", "rule_context", "GitLabError"]
