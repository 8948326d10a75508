"""The train executor: reads a lane into a `TrainSnapshot`, asks `rules.train.plan`, performs the
actions with real git (rules.train_ports.CarBuilder) and GitLab, and plans again.

Queue entries keep the lane's one state machine: an MR waiting for a car is `queued`, an MR in a
car (or held out of the train while its batch is bisected) is `waiting_pipeline`, the riders of a
car that lands are `merging` and then `merged`, an ejected MR is `failed`. Every move is a
compare-and-set, so a cancel that lands before a car's move to `merging` keeps that MR out of
GitLab; the car is dropped and the cars behind it are rebuilt without it.

A car lands by a fast-forward push of exactly the commit its pipeline tested, after which the
target's head is read back and compared: if it is not that commit, the lane stops (paused) with
the reason rather than go on from a tree nobody tested.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from merge_assist.rules import train_actions as act
from merge_assist.rules.engine import RuleOptions
from merge_assist.rules.errors import GitLabError
from merge_assist.rules.flow import (ALREADY_MERGED, FlowDeps, announce_failed, announce_merged, merge_setting,
                                     rule_context)
from merge_assist.rules.lane_machine import EntryState
from merge_assist.rules.metrics import METRICS
from merge_assist.rules.model import LaneKey, MergeRequest, Outcome, Project, QueueEntry, RuleContext
from merge_assist.rules.ports import GitLabPort, Refused
from merge_assist.rules.train import plan
from merge_assist.rules.train_ports import (
    BuiltCar, CarBuilder, CarRecord, CarStore, PushRefused, RiderSource, TargetMoved,
)
from merge_assist.rules.train_state import (
    Car, CarStatus, QueuedMr, TrainMode, TrainSettings, TrainSnapshot,
)

log = logging.getLogger("merge_assist.train")
MAX_ROUNDS = 12
PIPELINE_STATUS = {"success": CarStatus.PASSED, "failed": CarStatus.FAILED, "canceled": CarStatus.FAILED,
                   "skipped": CarStatus.FAILED, "manual": CarStatus.FAILED}


def train_settings(options: Mapping[str, Mapping[str, Any]]) -> TrainSettings:
    merge = options.get("merge") or {}
    return TrainSettings(mode=TrainMode(merge.get("mode", "serial")), pipeline_limit=int(merge.get("pipeline_limit", 4)),
                         min_batch=int(merge.get("min_batch", 2)), max_batch=int(merge.get("max_batch", 4)),
                         flaky_retries=int(merge.get("flaky_retries", 0)))


def is_train(options: Mapping[str, Mapping[str, Any]]) -> bool:
    return (options.get("merge") or {}).get("mode") == TrainMode.TRAIN.value


def lane_reads(gitlab: GitLabPort, project_id: int, target_branch: str, *, cached: bool
               ) -> tuple[dict[int, MergeRequest], str, bool]:
    """A train lane's open MRs by iid and its target's head, and whether they came from the cache.
    With `cached`, the adapter's cached reads are used when no webhook dropped them; a caller that
    got cached reads reads fresh ones before it lands anything."""
    if cached:
        mrs = gitlab.cached_open_merge_requests(project_id, target_branch)
        head = gitlab.cached_branch_sha(project_id, target_branch)
        if mrs is not None and head is not None:
            return {mr.iid: mr for mr in mrs}, head, True
    fresh = gitlab.list_open_merge_requests(project_id, target_branch)
    return {mr.iid: mr for mr in fresh}, gitlab.get_branch_sha(project_id, target_branch), False


def branch_for(lane: LaneKey, car_id: int) -> str:
    return f"merge-assist/train/{lane.target_branch}/{car_id}"


@dataclass
class _Lane:
    """One planning round's reads."""

    key: LaneKey
    fence: int
    project: Project
    options: RuleOptions
    entries: dict[int, QueueEntry]
    mrs: dict[int, MergeRequest]  # by entry id
    cars: dict[int, CarRecord]


class TrainLane:
    def __init__(self, deps: FlowDeps, cars: CarStore, builder: CarBuilder) -> None:
        self.deps = deps
        self.cars = cars
        self.builder = builder

    # -- events --------------------------------------------------------------------------------

    def pipeline_changed(self, lane: LaneKey, sha: str, pipeline_id: int, status: str,
                         web_url: str = "", failed_job: str | None = None) -> None:
        """A Pipeline or Job hook (or a poll) about a car's commit. Needs no lease: the result is a
        compare-and-set on the car still running, and the lane is driven afterwards."""
        record = next((r for r in self.cars.lane_cars(lane) if r.commit_sha == sha), None)
        if record is None or not record.car.status.running:
            return
        if pipeline_id and record.car.pipeline_id not in (None, pipeline_id):
            return  # an older run of a retried car
        outcome = CarStatus.FAILED if failed_job else PIPELINE_STATUS.get(status, CarStatus.TESTING)
        run = f"pipeline #{pipeline_id or record.car.pipeline_id}"
        reason = f"job `{failed_job}` failed in {run}" if failed_job else f"{run} {status}"
        if not pipeline_id and record.car.pipeline_id is None and record.commit_sha:
            runs = self.deps.gitlab.pipelines_for_sha(lane.project_id, record.commit_sha)
            if runs:
                pipeline_id, web_url = runs[0].id, runs[0].web_url
                run = f"pipeline #{pipeline_id}"
                reason = f"job `{failed_job}` failed in {run}" if failed_job else f"{run} {status}"
        fields: dict[str, object] = {"pipeline_url": web_url or record.pipeline_url}
        if pipeline_id:
            fields["pipeline_id"] = pipeline_id
        if outcome is CarStatus.TESTING:
            if pipeline_id and record.car.pipeline_id is None:
                self.cars.record_pipeline(lane, record.car.car_id, CarStatus.TESTING, reason, **fields)
            return
        if self.cars.record_pipeline(lane, record.car.car_id, outcome, reason, **fields) and outcome is CarStatus.FAILED:
            METRICS.train_batch("failed")
            run_id = pipeline_id or record.car.pipeline_id
            if failed_job and run_id:
                # The car's verdict is in; the rest of its pipeline would only hold a runner that
                # the side cars and the cars behind it are waiting for.
                self._cancel_run(lane, run_id)

    def poll_pipelines(self, lane: LaneKey, fence: int, project: Project) -> None:
        """The safety net for lost webhooks: ask GitLab about every running car."""
        for record in self.cars.lane_cars(lane):
            if record.car.status.running and record.commit_sha:
                runs = self.deps.gitlab.pipelines_for_sha(project.id, record.commit_sha)
                if runs:
                    self.pipeline_changed(lane, record.commit_sha, runs[0].id, runs[0].status, runs[0].web_url)

    # -- rounds --------------------------------------------------------------------------------

    def drive(self, key: LaneKey, fence: int, project: Project, options: RuleOptions) -> float | None:
        """Plan and act until only waiting is left. GitLab is read once per drive (the lane's open MRs
        and the target's head); the rounds after the first reuse that, updated with what the
        executor itself did."""
        settings = train_settings(options)
        gitlab = self.deps.gitlab
        open_mrs, target_head, cached = lane_reads(gitlab, project.id, key.target_branch, cached=True)
        for _ in range(MAX_ROUNDS):
            lane = self._read(key, fence, project, options, open_mrs)
            snapshot = self._snapshot(lane, settings, target_head)
            performed = [action for action in plan(snapshot) if not isinstance(action, act.Wait)]
            if cached and any(isinstance(action, act.LandCar) for action in performed):
                open_mrs, target_head, cached = lane_reads(gitlab, project.id, key.target_branch, cached=False)
                continue  # a car lands only after fresh reads of its MRs and the target
            for action in performed:
                done = self._perform(lane, snapshot, action)
                if isinstance(action, act.LandCar):
                    target_head = (lane.cars[action.car_id].commit_sha or target_head) if done else \
                        gitlab.get_branch_sha(project.id, key.target_branch)
                if not done:
                    break
            lane = self._refresh(lane)
            self._sync_entries(lane)
            METRICS.train_cars(str(key), len(lane.cars))
            if not performed:
                return None
        return 1.0

    def _read(self, key: LaneKey, fence: int, project: Project, options: RuleOptions,
              open_mrs: dict[int, MergeRequest]) -> _Lane:
        entries = {e.id: e for e in self.deps.store.lane_entries(key)}
        mrs: dict[int, MergeRequest] = {}
        for entry in list(entries.values()):
            mr = open_mrs.get(entry.mr_iid) or self.deps.gitlab.get_merge_request(project.id, entry.mr_iid)
            open_mrs[entry.mr_iid] = mr
            if mr.state == "opened" and mr.target_branch == key.target_branch:
                mrs[entry.id] = mr
                continue
            self._left(entry, mr, fence)
            del entries[entry.id]
        cars = {record.car.car_id: record for record in self.cars.lane_cars(key)}
        return _Lane(key, fence, project, options, entries, mrs, cars)

    def _refresh(self, lane: _Lane) -> _Lane:
        """The lane's entries and cars as stored now; the MRs as read at the start of the drive."""
        entries = {e.id: e for e in self.deps.store.lane_entries(lane.key) if e.id in lane.mrs}
        cars = {record.car.car_id: record for record in self.cars.lane_cars(lane.key)}
        return _Lane(lane.key, lane.fence, lane.project, lane.options, entries, lane.mrs, cars)

    def _left(self, entry: QueueEntry, mr: MergeRequest, fence: int) -> None:
        """The MR is no longer an open MR of this lane."""
        store = self.deps.store
        if mr.state == "merged":
            how = "merged" if entry.state is EntryState.MERGING else "merged outside the queue"
            moved = store.transition(entry.id, entry.state, EntryState.MERGED, how, fence=fence,
                                     merge_commit_sha=mr.merge_commit_sha)
            if isinstance(moved, Refused) and moved.already_merged:
                store.transition(entry.id, entry.state, EntryState.CANCELLED, ALREADY_MERGED, fence=fence)
        elif mr.state != "opened":
            store.transition(entry.id, entry.state, EntryState.CANCELLED, f"the merge request was {mr.state}",
                             fence=fence)
        else:
            store.transition(entry.id, entry.state, EntryState.CANCELLED,
                             f"its target branch is now {mr.target_branch}", fence=fence)

    def _snapshot(self, lane: _Lane, settings: TrainSettings, target_head: str) -> TrainSnapshot:
        queued = []
        for entry in lane.entries.values():
            mergeable = self._mergeable(lane, entry)
            if mergeable is None:
                continue
            queued.append(QueuedMr(entry.id, entry.mr_iid, lane.mrs[entry.id].sha, entry.priority, entry.id,
                                   mergeable, entry.attempts))
        records = list(lane.cars.values())
        return TrainSnapshot(
            target_head=target_head,
            entries=tuple(queued), train=tuple(r.car for r in records if not r.car.side),
            side_cars=tuple(r.car for r in records if r.car.side), settings=settings,
            next_car_id=self.cars.next_car_id(lane.key))

    def _mergeable(self, lane: _Lane, entry: QueueEntry) -> bool | None:
        """Whether the rules let it ride now; None after failing an entry a rule refuses. The MR's own
        pipeline does not count in train mode: the car's pipeline tests what will land."""
        mr = lane.mrs[entry.id]
        options = {**lane.options, "pipeline": {**(lane.options.get("pipeline") or {}), "enabled": False}}
        context = rule_context(self.deps, lane.project, mr, entry, self.deps.store.lane_paused(lane.key))
        decision = self.deps.engine.check_merge(context, options)
        if decision.outcome is Outcome.REFUSE and entry.state is not EntryState.MERGING:
            self._fail(lane, entry, decision.explain())
            return None
        if decision.outcome is not Outcome.PASS:
            log.debug("lane %s: !%s cannot ride now: %s", lane.key, entry.mr_iid, decision.explain())
        return decision.outcome is Outcome.PASS

    # -- actions -------------------------------------------------------------------------------

    def _perform(self, lane: _Lane, snapshot: TrainSnapshot, action: act.Action) -> bool:
        log.info("lane %s: %s", lane.key, action.describe())
        if isinstance(action, (act.BuildCar, act.StartSideCar)):
            return self._build(lane, action)
        if isinstance(action, act.LandCar):
            return self._land(lane, snapshot, action.car_id)
        if isinstance(action, act.DropCar):
            self._drop(lane, action.car_id, action.reason)
            return True
        if isinstance(action, act.RetryCar):
            return self._retry(lane, action.car_id)
        if isinstance(action, act.Eject):
            entry = lane.entries.get(action.entry_id)
            if entry is not None:
                self._fail(lane, entry, self._proof(lane, action.reason, action.proof_pipeline))
            return True
        raise TypeError(f"no executor for {type(action).__name__}")

    def _build(self, lane: _Lane, action: act.BuildCar | act.StartSideCar) -> bool:
        after = action.after_car if isinstance(action, act.BuildCar) else None
        base = lane.cars[after].commit_sha if after is not None else action.base_sha
        assert base is not None, "a car is stored with its commit"
        sources = [self._source(lane, rider.entry_id, rider.head_sha) for rider in action.riders]
        try:
            built = self.builder.build(lane.project, base, sources, branch_for(lane.key, action.car_id),
                                       lane.key.target_branch)
        except PushRefused as exc:
            self._stop_lane(lane, f"GitLab refused to let the bot push the temporary branch of car {action.car_id}: "
                                  f"{exc}. The bot needs push rights to unprotected branches (see README).")
            return False
        if not isinstance(built, BuiltCar):
            entry = lane.entries[built.entry_id]
            ahead = "the target branch" if after is None else "the target branch with the MRs ahead of it"
            self._fail(lane, entry, f"it does not merge cleanly onto {ahead}. Rebase it and retry.")
            return False
        side = isinstance(action, act.StartSideCar)
        held = action.held if isinstance(action, act.StartSideCar) else ()
        car = Car(action.car_id, action.riders, CarStatus.TESTING, action.base_sha, after_car=after, side=side,
                  held=held, suspects_proven=getattr(action, "suspects_proven", False),
                  proof_pipeline=getattr(action, "proof_pipeline", None))
        self.cars.add_car(lane.key, CarRecord(car, built.commit_sha, branch_for(lane.key, action.car_id),
                                              source_updates=built.source_updates, reason=action.describe()),
                          fence=lane.fence)
        if isinstance(action, act.StartSideCar):  # every side car re-tests its riders after a failure
            for rider in action.riders:
                self._count_flaky_retry(lane, rider.entry_id)
        lane.cars[car.car_id] = CarRecord(car, built.commit_sha, branch_for(lane.key, car.car_id),
                                          source_updates=built.source_updates)
        return True

    def _source(self, lane: _Lane, entry_id: int, head_sha: str) -> RiderSource:
        mr = lane.mrs[entry_id]
        squash = (lane.options.get("merge") or {}).get("squash")
        return RiderSource(entry_id, mr.iid, mr.title, mr.source_branch, head_sha,
                           bool(mr.squash if squash is None else squash))

    def _land(self, lane: _Lane, snapshot: TrainSnapshot, car_id: int) -> bool:
        record = lane.cars[car_id]
        riders = [lane.entries[r.entry_id] for r in record.car.riders]
        merging: list[QueueEntry] = []
        for entry in riders:  # the compare-and-set that a cancel races with
            moved = entry if entry.state is EntryState.MERGING else self.deps.store.transition(
                entry.id, entry.state, EntryState.MERGING, f"landing car {car_id}", fence=lane.fence)
            if isinstance(moved, Refused):
                for done in merging:
                    self.deps.store.transition(done.id, EntryState.MERGING, EntryState.WAITING_PIPELINE,
                                               f"car {car_id} lost a rider before landing", fence=lane.fence)
                return False
            merging.append(moved)
        assert record.commit_sha is not None
        try:
            self.builder.land(lane.project, lane.key.target_branch, record.commit_sha, record.source_updates,
                              target_pipeline=merge_setting(lane.options, "target_pipeline") is not False)
        except TargetMoved:
            self._back_to_waiting(lane, merging, f"the target branch moved before car {car_id} landed")
            return False
        except PushRefused as exc:
            self._back_to_waiting(lane, merging, "GitLab refused the bot's push")
            self._stop_lane(lane, f"GitLab refused to let the bot push car {car_id} to "
                                  f"`{lane.key.target_branch}`: {exc}. The bot needs push rights (see README).")
            return False
        head = self.deps.gitlab.get_branch_sha(lane.project.id, lane.key.target_branch)
        if head != record.commit_sha:
            self._stop_lane(lane, f"after landing car {car_id}, `{lane.key.target_branch}` is at {head[:12]}, "
                                  f"not the tested commit {record.commit_sha[:12]}; stopped until someone checks")
            return False
        self.cars.update_car(lane.key, car_id, fence=lane.fence, status=CarStatus.LANDED,
                             reason=f"landed {record.commit_sha[:12]}")
        METRICS.train_batch("landed")
        # Every car built on it: a failed car dropped in this round may come first.
        for behind in (c for c in snapshot.train if c.after_car == car_id):
            self.cars.update_car(lane.key, behind.car_id, fence=lane.fence, after_car=None, base_sha=record.commit_sha)
        self._forget_branch(lane, record)
        merged_as = self._rider_commits(lane, record)
        for entry in merging:
            sha = merged_as.get(entry.id, record.commit_sha)
            moved = self.deps.store.transition(entry.id, EntryState.MERGING, EntryState.MERGED,
                                               f"merged in car {car_id}", fence=lane.fence, merge_commit_sha=sha)
            if isinstance(moved, Refused):
                if moved.already_merged:
                    self.deps.store.transition(entry.id, EntryState.MERGING, EntryState.CANCELLED, ALREADY_MERGED,
                                               fence=lane.fence)
                continue
            announce_merged(self.deps, entry, sha, metric="train", how="train",
                            context=self._context(lane, entry), options=lane.options, car=car_id)
        return True

    def _rider_commits(self, lane: _Lane, record: CarRecord) -> dict[int, str]:
        """Each rider's own merge commit in the landed car; the car's commit for all when git cannot say
        (the car has landed: this must not stop the entries from being recorded merged)."""
        assert record.commit_sha is not None
        riders = [self._source(lane, rider.entry_id, rider.head_sha) for rider in record.car.riders]
        try:
            return self.builder.rider_commits(lane.project, record.commit_sha, riders, record.source_updates)
        except Exception:
            log.exception("lane %s: cannot tell the riders' commits of car %s; reporting the car's commit",
                          lane.key, record.car.car_id)
            return {}

    def _back_to_waiting(self, lane: _Lane, entries: list[QueueEntry], reason: str) -> None:
        for entry in entries:
            self.deps.store.transition(entry.id, EntryState.MERGING, EntryState.WAITING_PIPELINE, reason,
                                       fence=lane.fence)

    def _stop_lane(self, lane: _Lane, reason: str) -> None:
        log.error("lane %s stopped: %s", lane.key, reason)
        self.deps.store.set_lane_paused(lane.key, True)
        for entry in lane.entries.values():
            self.deps.feedback.comment(entry.project_id, entry.mr_iid, f"The `{lane.key.target_branch}` queue "
                                       f"is paused: {reason}")
            break

    def _drop(self, lane: _Lane, car_id: int, reason: str) -> None:
        record = lane.cars.get(car_id)
        if record is None:
            return
        if record.car.status.running:
            self._cancel_pipeline(lane, record)
        self.cars.update_car(lane.key, car_id, fence=lane.fence, status=CarStatus.CANCELLED, reason=reason)
        self._forget_branch(lane, record)

    def _cancel_pipeline(self, lane: _Lane, record: CarRecord) -> None:
        """A dropped car's pipeline would only hold a runner: cancel it (found by commit if its
        hook has not told us its id yet)."""
        try:
            ids = [record.car.pipeline_id] if record.car.pipeline_id is not None else [
                run.id for run in self.deps.gitlab.pipelines_for_sha(lane.project.id, record.commit_sha or "")
                if run.status in ("created", "pending", "running")]
        except GitLabError as exc:
            log.warning("lane %s: cannot find the pipeline of car %s: %s", lane.key, record.car.car_id, exc)
            return
        for pipeline_id in ids:
            self._cancel_run(lane.key, pipeline_id)

    def _cancel_run(self, lane: LaneKey, pipeline_id: int) -> None:
        try:
            self.deps.gitlab.cancel_pipeline(lane.project_id, pipeline_id)
        except GitLabError as exc:
            log.warning("lane %s: cannot cancel pipeline %s: %s", lane, pipeline_id, exc)

    def _forget_branch(self, lane: _Lane, record: CarRecord) -> None:
        if record.branch:
            self.builder.delete_branches(lane.project, [record.branch])

    def _retry(self, lane: _Lane, car_id: int) -> bool:
        record = lane.cars[car_id]
        if record.car.pipeline_id is None:
            return False
        self.deps.gitlab.retry_pipeline(lane.project.id, record.car.pipeline_id)
        self.cars.update_car(lane.key, car_id, fence=lane.fence, status=CarStatus.TESTING,
                             reason="re-testing: the failure may be flaky", attempts=record.car.attempts + 1)
        for rider in record.car.riders:
            self._count_flaky_retry(lane, rider.entry_id)
        return True

    def _count_flaky_retry(self, lane: _Lane, entry_id: int) -> None:
        entry = lane.entries[entry_id]
        moved = self.deps.store.transition(entry.id, entry.state, entry.state, entry.reason, fence=lane.fence,
                                           attempts=entry.attempts + 1)
        if not isinstance(moved, Refused):
            lane.entries[entry_id] = moved

    def _proof(self, lane: _Lane, reason: str, pipeline_id: int | None) -> str:
        url = next((r.pipeline_url for r in lane.cars.values() if r.car.pipeline_id == pipeline_id and r.pipeline_url),
                   None)
        if url is None and pipeline_id and lane.project.web_url:  # the proving car may be gone by now
            url = f"{lane.project.web_url}/-/pipelines/{pipeline_id}"
        where = f" ({url})" if url else ""
        return f"{reason}{where}. Fix it, then `/merge-assist retry`."

    def _fail(self, lane: _Lane, entry: QueueEntry, reason: str) -> None:
        moved = self.deps.store.transition(entry.id, entry.state, EntryState.FAILED, reason, fence=lane.fence)
        if isinstance(moved, Refused):
            return
        lane.entries.pop(entry.id, None)
        announce_failed(self.deps, entry, reason, why="train_ejected", context=self._context(lane, entry),
                        options=lane.options)

    def _context(self, lane: _Lane, entry: QueueEntry) -> RuleContext | None:
        mr = lane.mrs.get(entry.id)
        return rule_context(self.deps, lane.project, mr, entry) if mr is not None else None

    # -- entry states follow the cars ------------------------------------------------------------

    def _sync_entries(self, lane: _Lane) -> None:
        where: dict[int, str] = {}
        passed: set[int] = set()  # an MR whose car passed starts its re-test count afresh
        for record in lane.cars.values():
            car = record.car
            if car.status is CarStatus.PASSED:
                passed.update(r.entry_id for r in car.riders)
            others = ", ".join(f"!{lane.entries[r.entry_id].mr_iid}" for r in car.riders if r.entry_id in lane.entries)
            run = f"pipeline #{car.pipeline_id}" if car.pipeline_id else "its pipeline"
            kind = "side car" if car.side else "car"
            for rider in car.riders:
                where[rider.entry_id] = f"in {kind} {car.car_id} ({others}): waiting for {run}"
            for held in car.held:
                where[held.entry_id] = f"held out of the train while {kind} {car.car_id} finds which MR broke it"
        for entry in lane.entries.values():
            if entry.state is EntryState.MERGING:
                continue
            if entry.id in where:
                target, reason = EntryState.WAITING_PIPELINE, where[entry.id]
            else:
                target, reason = EntryState.QUEUED, "waiting for the next car"
            retries = 0 if entry.id in passed else entry.attempts
            if entry.state is not target or entry.reason != reason or retries != entry.attempts:
                self.deps.store.transition(entry.id, entry.state, target, reason, fence=lane.fence,
                                           tested_sha=lane.mrs[entry.id].sha, attempts=retries)


__all__ = ["TrainLane", "train_settings", "is_train", "branch_for"]
