"""The lane executor: carries out what the planner (rules/lane_plan.py) decides, one action at a time.

Every action that changes an entry is a compare-and-set transition (rules/lane_machine.py's
table) on the state the snapshot was read in and on the lane's fencing token, committed with its
audit record before the next side effect. A refused compare-and-set (a cancel came first, another
worker moved the entry) means: read the lane again and plan again. Every step starts from a fresh
read of the merge request, so a worker killed anywhere resumes from the stored state: an entry
found in `merging` whose MR is already merged is recorded as merged, never merged again; GitLab's
`sha` check makes a repeated merge call safe.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Protocol

from merge_assist.rules import lane_plan as actions
from merge_assist.rules.engine import RuleEngine, RuleOptions
from merge_assist.rules.errors import GitLabError, HeadMoved, LeaseLost, NotMergeable, RebaseRefused, TransientGitLabError
from merge_assist.rules.events import log_event
from merge_assist.rules.feedback import Feedback
from merge_assist.rules.lane_plan import LaneSnapshot, head_of, plan
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import (
    Approvals, EntryState, LaneKey, MergeRequest, Project, QueueEntry, RuleContext,
)
from merge_assist.rules.ports import Clock, GitLabPort, LaneLeases, QueueStore, Refused

log = logging.getLogger("merge_assist.flow")

CONTINUE = -1.0
"""A step result meaning: look at the lane again now."""
POLL_SECONDS = actions.POLL_SECONDS
BUSY_RETRY_SECONDS = 1.0
TRANSIENT_RETRY_SECONDS = 15.0
MAX_STEPS_PER_DRIVE = 25
MAX_MERGE_ATTEMPTS = actions.MAX_MERGE_ATTEMPTS


class ConfigProvider(Protocol):
    def options_for(self, project: Project, mr: MergeRequest | None = None) -> RuleOptions:
        """Effective rule options for the project (reporting a broken config on `mr`)."""
        ...


class PauseSwitch(Protocol):
    def lane_paused(self, lane: LaneKey) -> bool: ...

    def set_lane_paused(self, lane: LaneKey, paused: bool) -> None: ...


ALREADY_MERGED = "the queue had already merged this MR"
"""Why an entry is cancelled when the store refuses its move to `merged` (Refused.already_merged):
the MR was queued again in the moment the queue merged it, and its one merge is recorded once."""


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


def announce_merged(deps: FlowDeps, entry: QueueEntry, sha: str | None, *, metric: str, how: str,
                    context: RuleContext | None, options: RuleOptions | None, car: int | None = None) -> None:
    """What follows an entry's move to `merged`, in either lane: the metric (`queue`, `train` or
    `outside`), the event log, the plugins' hook and, when the queue merged it, the time to merge
    and the comment on the MR."""
    METRICS.merged(metric)
    log_event("merged", project=entry.project_id, mr=entry.mr_iid, lane=str(entry.lane), how=how, sha=sha, car=car)
    by_queue = metric != "outside"
    if by_queue:
        METRICS.command_to_merge(_seconds_since(entry.enqueued_at, deps.clock.now()))
    if context is not None:
        deps.engine.after_merge(context, sha, options)
    if by_queue:
        deps.feedback.merged(entry.project_id, entry.mr_iid, sha, entry.target_branch)


def announce_failed(deps: FlowDeps, entry: QueueEntry, reason: str, *, why: str, context: RuleContext | None,
                    options: RuleOptions | None) -> None:
    """What follows an entry's move to `failed`, in either lane; `why` is the short label for
    metrics and the event log, `reason` goes to the plugins and the MR."""
    METRICS.failed(why)
    log_event("failed", level=logging.WARNING, project=entry.project_id, mr=entry.mr_iid, lane=str(entry.lane),
              reason=why)
    if context is not None:
        deps.engine.merge_failed(context, reason, options)
    deps.feedback.failed(entry.project_id, entry.mr_iid, reason)


class TrainDriver(Protocol):
    """A lane in `train` mode (rules.train_lane.TrainLane)."""

    def drive(self, key: LaneKey, fence: int, project: Project, options: RuleOptions) -> float | None: ...

    def pipeline_changed(self, lane: LaneKey, sha: str, pipeline_id: int, status: str,
                         web_url: str = "", failed_job: str | None = None) -> None: ...

    def poll_pipelines(self, lane: LaneKey, fence: int, project: Project) -> None: ...


class LaneDriver:
    """Drives lanes under a lease, one MR at a time (mode `serial`) or as a train; safe to run in
    many processes at once."""

    def __init__(self, deps: FlowDeps, holder: str, lease_seconds: float = 60.0,
                 train: TrainDriver | None = None) -> None:
        self.deps = deps
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.train = train

    def _train_options(self, lane: LaneKey) -> tuple[Project, RuleOptions] | None:
        """The project and options when the lane runs a train, else None."""
        if self.train is None:
            return None
        project = self.deps.gitlab.get_project(lane.project_id)
        options = self.deps.config.options_for(project)
        return (project, options) if (options.get("merge") or {}).get("mode") == "train" else None

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

    def drive(self, lane: LaneKey, *, poll: bool = False) -> float | None:
        """Advance the lane as far as it goes now; returns seconds until it wants a look again.
        `poll`: also ask GitLab about running pipelines (the safety net for lost webhooks)."""
        with self._lease(lane) as fence:
            if fence is None:
                return BUSY_RETRY_SECONDS
            try:
                train = self._train_options(lane)
                if train is not None and self.train is not None:
                    if poll:
                        self.train.poll_pipelines(lane, fence, train[0])
                    return self.train.drive(lane, fence, *train)
                read: dict[int, MergeRequest] = {}  # MRs read in this drive and not acted on since
                for _ in range(MAX_STEPS_PER_DRIVE):
                    head = head_of(self.deps.store.lane_entries(lane))
                    if head is None:
                        return None
                    wake = self._step(head, fence, read)
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
        if self.train is not None and self._train_options(lane) is not None:
            self.train.pipeline_changed(lane, sha, 0, "failed", failed_job=job_name)
            return
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

    def car_pipeline(self, lane: LaneKey, sha: str, pipeline_id: int, status: str, web_url: str) -> None:
        """A pipeline of a train car finished (Pipeline hook); recorded even while another worker
        drives the lane."""
        if self.train is not None:
            self.train.pipeline_changed(lane, sha, pipeline_id, status, web_url)

    # -- one step: snapshot, plan, act ------------------------------------------------------

    def _step(self, entry: QueueEntry, fence: int, read: dict[int, MergeRequest]) -> float | None:
        """One planned action. The MR is read from GitLab once per drive and again after anything
        the bot asked GitLab to do (a rebase, a merge); recording a state change in our own
        database does not change the MR, so the same read serves the next step. A drive may
        start from the adapter's cached read (no webhook said the MR changed since) as long as
        that only keeps the entry waiting (lane_plan.may_follow_cached_read)."""
        gitlab = self.deps.gitlab
        mr = read.get(entry.id)
        if mr is None:
            cached = gitlab.cached_merge_request(entry.project_id, entry.mr_iid)
            if cached is not None:
                planned = self._plan(entry, cached)
                if actions.may_follow_cached_read(planned[0], entry):
                    return self._act(*planned, fence)
            mr = gitlab.get_merge_request(entry.project_id, entry.mr_iid)
        planned = self._plan(entry, mr)
        if isinstance(planned[0], (actions.Validate, actions.NoteReason)):
            read[entry.id] = mr
        else:
            read.pop(entry.id, None)
        return self._act(*planned, fence)

    def _plan(self, entry: QueueEntry, mr: MergeRequest
              ) -> tuple[actions.Action, LaneSnapshot, RuleContext | None, RuleOptions | None]:
        """The action for this read of the MR, with the rules' context when they were asked."""
        snapshot = LaneSnapshot(entry, mr, self.deps.gitlab.get_project(entry.project_id))
        action = plan(snapshot)
        if not isinstance(action, actions.CheckRules):
            return action, snapshot, None, None
        options = self.deps.config.options_for(snapshot.project, snapshot.mr)
        context = rule_context(self.deps, snapshot.project, snapshot.mr, entry, self.deps.store.lane_paused(entry.lane))
        snapshot = LaneSnapshot(entry, snapshot.mr, snapshot.project, self.deps.engine.check_merge(context, options))
        return plan(snapshot), snapshot, context, options

    def _act(self, action: actions.Action, snap: LaneSnapshot, context: RuleContext | None,
             options: RuleOptions | None, fence: int) -> float | None:
        entry, mr, project = snap.entry, snap.mr, snap.project
        if isinstance(action, actions.Wait):
            return action.seconds
        if isinstance(action, actions.RecordMerged):
            self._finish_merged(entry, fence, action.merge_commit_sha, action.reason)
            return CONTINUE
        if isinstance(action, actions.Cancel):
            self._move(entry, EntryState.CANCELLED, action.reason, fence)
            return CONTINUE
        if isinstance(action, actions.Fail):
            return self._fail(entry, fence, project, mr, action.reason, context, options, why=action.why)
        if isinstance(action, actions.Rebase):
            return self._rebase(entry, fence, project, mr, action.reason)
        if isinstance(action, actions.Validate):
            self._move(entry, EntryState.WAITING_PIPELINE, action.reason, fence, tested_sha=action.sha)
            return CONTINUE
        if isinstance(action, actions.NoteReason):
            moved = self._move(entry, EntryState.WAITING_PIPELINE, action.reason, fence)
            return CONTINUE if isinstance(moved, Refused) else None
        if isinstance(action, actions.Merge):
            assert context is not None and options is not None, "a merge is planned only after the rules passed"
            return self._merge(entry, fence, project, mr, action, context, options)
        raise TypeError(f"no executor for {type(action).__name__}")

    def _move(self, entry: QueueEntry, to: EntryState, reason: str, fence: int,
              **fields: Any) -> QueueEntry | Refused:
        """Compare-and-set from the state the step read; a refusal means plan again."""
        moved = self.deps.store.transition(entry.id, entry.state, to, reason, fence=fence, **fields)
        if isinstance(moved, Refused):
            log.info("lane %s: !%s moved on (%s); planning again", entry.lane, entry.mr_iid, moved.reason)
        return moved

    def _rebase(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest, reason: str) -> float | None:
        moved = self._move(entry, EntryState.REBASING, reason, fence, attempts=entry.attempts + 1, tested_sha=mr.sha)
        if isinstance(moved, Refused):
            return CONTINUE
        try:
            self.deps.gitlab.rebase(project.id, mr.iid)
        except RebaseRefused as exc:
            return self._fail(moved, fence, project, mr, f"GitLab would not rebase it: {exc.message}",
                              why="rebase_refused")
        return POLL_SECONDS

    def _merge(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest, action: actions.Merge,
               context: RuleContext, options: RuleOptions) -> float | None:
        if entry.state is not EntryState.MERGING:
            # The compare-and-set that a cancel races with: once it succeeds, no cancel can.
            moved = self._move(entry, EntryState.MERGING, action.reason, fence, tested_sha=action.sha)
            if isinstance(moved, Refused):
                return CONTINUE
            if entry.state is EntryState.WAITING_PIPELINE:  # since its last change: close enough for a dashboard
                METRICS.pipeline_wait(_seconds_since(entry.updated_at, self.deps.clock.now()))
            entry = moved
        self.deps.engine.before_merge(context, options)
        squash = merge_setting(options, "squash")
        try:
            result = self.deps.gitlab.merge(project.id, mr.iid, sha=action.sha, squash=squash)
        except HeadMoved:
            self._move(entry, EntryState.WAITING_PIPELINE,
                       "the source branch moved just before merging; validating again", fence)
            return CONTINUE
        except NotMergeable as exc:
            attempts = entry.attempts + 1
            if attempts >= MAX_MERGE_ATTEMPTS:
                return self._fail(entry, fence, project, mr,
                                  f"GitLab refused the merge {attempts} times ({exc.status}: {exc.message}).",
                                  why="merge_refused")
            self._move(entry, EntryState.QUEUED, f"GitLab refused the merge ({exc.status}); checking again", fence,
                       attempts=attempts)
            return CONTINUE
        if result.state != "merged":
            result = self.deps.gitlab.get_merge_request(project.id, mr.iid)
        if result.state != "merged":
            self._move(entry, EntryState.QUEUED, "GitLab accepted the merge but did not merge; checking again", fence,
                       attempts=entry.attempts + 1)
            return CONTINUE
        self._finish_merged(entry, fence, result.merge_commit_sha, "merged", context, options)
        return CONTINUE

    def _finish_merged(self, entry: QueueEntry, fence: int, sha: str | None, how: str,
                       context: RuleContext | None = None, options: RuleOptions | None = None) -> None:
        moved = self._move(entry, EntryState.MERGED, how, fence, merge_commit_sha=sha)
        if isinstance(moved, Refused):
            if moved.already_merged:
                self._move(entry, EntryState.CANCELLED, ALREADY_MERGED, fence)
            return
        announce_merged(self.deps, entry, sha, metric="queue" if how == "merged" else "outside", how=how,
                        context=context, options=options)

    def _fail(self, entry: QueueEntry, fence: int, project: Project, mr: MergeRequest, reason: str,
              context: RuleContext | None = None, options: RuleOptions | None = None, *, why: str) -> float:
        """Fail the entry; `why` is the short metrics label for `reason`."""
        if isinstance(self._move(entry, EntryState.FAILED, reason, fence), Refused):
            return CONTINUE
        announce_failed(self.deps, entry, reason, why=why, context=context or rule_context(self.deps, project, mr, entry),
                        options=options)
        return CONTINUE


def _seconds_since(moment: datetime, now: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (now - moment).total_seconds())


def merge_setting(options: Mapping[str, Mapping[str, Any]], key: str) -> Any:
    return (options.get("merge") or {}).get(key)


__all__ = ["LaneDriver", "FlowDeps", "ConfigProvider", "rule_context", "GitLabError"]
