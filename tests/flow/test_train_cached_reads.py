"""A train lane and the adapter's cached reads: a drive may plan from them, but a car lands only
after fresh reads of its MRs and the target (rules.train_lane.lane_reads)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from merge_assist.rules.train_lane import lane_reads
from merge_assist.rules.train_lane import TrainLane
from merge_assist.rules.train_ports import BuiltCar
from merge_assist.rules.model import EntryState, Pipeline
from tests.flow.test_lane_driver import LANE, SHA2, FakeGitLab, driver, queue, state, store  # noqa: F401

TARGET = "f" * 40
OPTIONS = {"merge": {"mode": "train", "pipeline_limit": 4, "min_batch": 1, "max_batch": 4, "flaky_retries": 0}}


class TrainGitLab(FakeGitLab):
    """Adds the lane's list and the target head, each with a fresh and a cached answer."""

    def __init__(self) -> None:
        super().__init__()
        self.head = TARGET
        self.cached_list: list | None = None
        self.cached_head: str | None = None
        self.fresh_lists = 0

    def list_open_merge_requests(self, project_id, target_branch):
        self.fresh_lists += 1
        return [mr for mr in self.mrs.values() if mr.state == "opened"]

    def cached_open_merge_requests(self, project_id, target_branch):
        return self.cached_list

    def get_branch_sha(self, project_id, branch):
        return self.head

    def cached_branch_sha(self, project_id, branch):
        return self.cached_head

    def pipelines_for_sha(self, project_id, sha):
        return []


@pytest.fixture
def gitlab():
    return TrainGitLab()


class Git:
    def __init__(self, gitlab: TrainGitLab) -> None:
        self.gitlab = gitlab
        self.landed: list[str] = []

    def build(self, project, base_sha, riders, branch, target_branch):
        return BuiltCar("c" + "".join(r.head_sha[0] for r in riders) * 39, {})

    def land(self, project, target_branch, commit_sha, source_updates, *, target_pipeline=True):
        self.landed.append(commit_sha)
        self.gitlab.head = commit_sha

    def rider_commits(self, project, commit_sha, riders, source_updates):
        return {rider.entry_id: commit_sha for rider in riders}

    def delete_branches(self, project, branches):
        pass


def train_with_a_passed_car(store, driver):
    """MR 1 queued, its car built and its pipeline passed; the lane's reads cached since."""
    gitlab: TrainGitLab = driver.deps.gitlab
    gitlab.add(1, head_pipeline=None)
    entry = queue(store, 1)
    git = Git(gitlab)
    train = TrainLane(driver.deps, store.cars, git)
    fence = store.queue.acquire(LANE, "test", 30)
    train.drive(LANE, fence, gitlab.project, OPTIONS)
    car = store.cars.lane_cars(LANE)[0]
    train.pipeline_changed(LANE, car.commit_sha, 55, "success")
    gitlab.cached_list, gitlab.cached_head = list(gitlab.mrs.values()), gitlab.head
    return train, git, fence, entry


def test_lane_reads_come_from_the_cache_only_when_asked_and_present():
    gitlab = TrainGitLab()
    gitlab.add(1)
    assert lane_reads(gitlab, 1, "main", cached=True)[2] is False  # nothing cached yet
    gitlab.cached_list, gitlab.cached_head = [gitlab.mrs[1]], TARGET
    mrs, head, cached = lane_reads(gitlab, 1, "main", cached=True)
    assert (list(mrs), head, cached) == ([1], TARGET, True) and gitlab.fresh_lists == 1
    assert lane_reads(gitlab, 1, "main", cached=False)[2] is False and gitlab.fresh_lists == 2


def test_a_car_lands_after_fresh_reads(store, gitlab, driver):
    train, git, fence, entry = train_with_a_passed_car(store, driver)
    lists = gitlab.fresh_lists
    train.drive(LANE, fence, gitlab.project, OPTIONS)
    assert git.landed and state(store, entry).state is EntryState.MERGED
    assert gitlab.fresh_lists == lists + 1


def test_a_stale_cached_head_of_an_mr_does_not_land(store, gitlab, driver):
    train, git, fence, entry = train_with_a_passed_car(store, driver)
    # The author pushed SHA2 after the car was built; the webhook never came, so the cache still says SHA1.
    gitlab.mrs[1] = replace(gitlab.mrs[1], sha=SHA2, head_pipeline=Pipeline(2, SHA2, "running"))
    train.drive(LANE, fence, gitlab.project, OPTIONS)
    assert git.landed == []
    assert state(store, entry).state is not EntryState.MERGED



def test_each_rider_of_a_landed_batch_is_recorded_with_its_own_merge_commit(store, gitlab, driver):
    """Plugins, Slack and the entries get the commit that merged each MR, as GitLab reports it, not
    the car's last commit for all of them."""
    for iid in (1, 2):
        gitlab.add(iid, sha=f"{iid}" * 40, head_pipeline=None)
    entries = [queue(store, iid) for iid in (1, 2)]
    git = Git(gitlab)
    git.rider_commits = lambda project, commit_sha, riders, updates: {  # type: ignore[method-assign]
        rider.entry_id: f"{rider.entry_id:x}".ljust(40, "e") for rider in riders}
    train = TrainLane(driver.deps, store.cars, git)
    fence = store.queue.acquire(LANE, "test", 30)
    one_slot = {"merge": {**OPTIONS["merge"], "pipeline_limit": 1}}
    train.drive(LANE, fence, gitlab.project, one_slot)
    [car] = store.cars.lane_cars(LANE)
    assert [rider.entry_id for rider in car.car.riders] == [entry.id for entry in entries]
    train.pipeline_changed(LANE, car.commit_sha, 55, "success")
    train.drive(LANE, fence, gitlab.project, one_slot)
    assert git.landed == [car.commit_sha]
    with store.db.engine.connect() as conn:
        recorded = dict(conn.execute(text("SELECT id, merge_commit_sha FROM queue_entries")).all())
    for entry in entries:
        own = f"{entry.id:x}".ljust(40, "e")
        assert state(store, entry).state is EntryState.MERGED
        assert recorded[entry.id] == own
        assert any(f"as {own[:12]}" in note for note in gitlab.notes), gitlab.notes
