"""The lane state machine against GitLab's error answers, with an in-memory GitLab port.

GitLab's behaviour in the happy paths is covered end to end against the simulator; these cases
script answers (409, 405/422, 5xx, closed, draft, failed rebase) that are awkward to provoke there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from merge_assist import plugins
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.errors import HeadMoved, NotMergeable, RebaseRefused, TransientGitLabError
from merge_assist.rules.feedback import Feedback
from merge_assist.rules.flow import BUSY_RETRY_SECONDS, POLL_SECONDS, TRANSIENT_RETRY_SECONDS, FlowDeps, LaneDriver
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Approvals, EntryState, LaneKey, MergeRequest, Pipeline, Priority, Project
from merge_assist.rules.plugins import build_plugin_manager
from merge_assist.storage import Store, migrate

SHA1, SHA2 = "1" * 40, "2" * 40


class FakeGitLab:
    """Holds one project and its MRs; `merge_answers` scripts what merge() does, in order."""

    def __init__(self) -> None:
        self.project = Project(1, "acme/app", merge_method="merge")
        self.mrs: dict[int, MergeRequest] = {}
        self.merge_answers: list[Exception | None] = []
        self.merged_with: list[str] = []
        self.notes: list[str] = []
        self.rebases = 0
        self.failing: Exception | None = None
        self.cached: dict[int, MergeRequest] = {}  # what the adapter's cache hands out (none unless a test says)
        self.reads = 0

    def add(self, iid: int, **fields) -> MergeRequest:
        mr = MergeRequest(project_id=1, iid=iid, title=f"MR {iid}", author_id=9, author_username="alice",
                          source_branch=f"b{iid}", target_branch="main", state="opened", sha=SHA1,
                          head_pipeline=Pipeline(1, SHA1, "success"))
        self.mrs[iid] = replace(mr, **fields)
        return self.mrs[iid]

    def current_user(self): return (100, "bot")
    def get_project(self, project_id): return self.project
    def get_approvals(self, project_id, iid): return Approvals()
    def get_access_level(self, project_id, user_id): return 30
    def get_merge_access_level(self, project_id, branch): return None
    def get_file(self, project_id, path, ref): return None
    def get_branch_sha(self, project_id, branch): return "f" * 40
    def get_pipeline(self, project_id, pipeline_id): raise NotImplementedError
    def award_emoji(self, project_id, iid, note_id, name): pass

    def get_merge_request(self, project_id, iid):
        if self.failing is not None:
            raise self.failing
        self.reads += 1
        return self.mrs[iid]

    def cached_merge_request(self, project_id, iid):
        return self.cached.get(iid)

    def rebase(self, project_id, iid):
        self.rebases += 1
        answer = self.merge_answers.pop(0) if self.merge_answers else None
        if answer is not None:
            raise answer
        self.mrs[iid] = replace(self.mrs[iid], rebase_in_progress=True)

    def merge(self, project_id, iid, sha, squash=None):
        answer = self.merge_answers.pop(0) if self.merge_answers else None
        if answer is not None:
            raise answer
        self.merged_with.append(sha)
        self.mrs[iid] = replace(self.mrs[iid], state="merged", merge_commit_sha="m" * 40)
        return self.mrs[iid]

    def post_note(self, project_id, iid, body):
        self.notes.append(body)
        return len(self.notes)


class NoConfig:
    def options_for(self, project, mr=None):
        return {}


class FixedClock:
    def now(self):
        return datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)  # a Wednesday


@pytest.fixture
def store(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(store.db)
    return store


@pytest.fixture
def gitlab():
    return FakeGitLab()


@pytest.fixture
def driver(store, gitlab):
    engine = RuleEngine(build_plugin_manager(plugins.BUILTIN_PLUGINS, load_entry_points=False), RecordingMetrics())
    deps = FlowDeps(gitlab=gitlab, store=store.queue, engine=engine, config=NoConfig(), clock=FixedClock(),
                    feedback=Feedback(gitlab))
    return LaneDriver(deps, "test-worker", lease_seconds=30)


LANE = LaneKey(1, "main")


def queue(store, iid):
    return store.queue.add_entry(1, iid, "main", Priority.NORMAL, "alice")


def state(store, entry):
    return store.queue.get_entry(entry.id)


def test_happy_path_merges_the_tested_sha(store, gitlab, driver):
    gitlab.add(1)
    entry = queue(store, 1)
    assert driver.drive(LANE) is None
    assert state(store, entry).state is EntryState.MERGED
    assert gitlab.merged_with == [SHA1]
    assert any("Merged into `main`" in n for n in gitlab.notes)


def test_head_moved_at_merge_revalidates_and_merges_the_new_sha(store, gitlab, driver):
    gitlab.add(1)
    entry = queue(store, 1)
    gitlab.merge_answers = [HeadMoved(409, "SHA does not match HEAD of source branch")]
    real_merge = gitlab.merge

    def merge_then_push(*args, **kwargs):
        try:
            return real_merge(*args, **kwargs)
        finally:
            gitlab.mrs[1] = replace(gitlab.mrs[1], sha=SHA2, head_pipeline=Pipeline(2, SHA2, "running"))

    gitlab.merge = merge_then_push
    assert driver.drive(LANE) is None
    current = state(store, entry)
    assert current.state is EntryState.WAITING_PIPELINE and current.tested_sha == SHA2
    gitlab.mrs[1] = replace(gitlab.mrs[1], head_pipeline=Pipeline(2, SHA2, "success"))
    driver.drive(LANE)
    assert state(store, entry).state is EntryState.MERGED
    assert gitlab.merged_with == [SHA2]


@pytest.mark.parametrize("status", [405, 422])
def test_repeated_refusals_end_in_failed_with_the_reason(store, gitlab, driver, status):
    gitlab.add(1)
    entry = queue(store, 1)
    gitlab.merge_answers = [NotMergeable(status, "Branch cannot be merged")] * 3
    driver.drive(LANE)
    failed = state(store, entry)
    assert failed.state is EntryState.FAILED
    assert str(status) in failed.reason and "refused" in failed.reason
    assert any("could not merge" in n for n in gitlab.notes)


def test_one_refusal_then_success(store, gitlab, driver):
    gitlab.add(1)
    entry = queue(store, 1)
    gitlab.merge_answers = [NotMergeable(405, "Method Not Allowed")]
    driver.drive(LANE)
    merged = state(store, entry)
    assert merged.state is EntryState.MERGED and merged.attempts == 1


def test_gitlab_5xx_keeps_the_state_and_retries_later(store, gitlab, driver):
    gitlab.add(1)
    entry = queue(store, 1)
    gitlab.failing = TransientGitLabError(502, "Bad Gateway")
    assert driver.drive(LANE) == TRANSIENT_RETRY_SECONDS
    assert state(store, entry).state is EntryState.QUEUED
    gitlab.failing = None
    driver.drive(LANE)
    assert state(store, entry).state is EntryState.MERGED


def test_closed_mr_is_cancelled_and_the_next_one_proceeds(store, gitlab, driver):
    gitlab.add(1, state="closed")
    gitlab.add(2)
    first, second = queue(store, 1), queue(store, 2)
    driver.drive(LANE)
    assert state(store, first).state is EntryState.CANCELLED
    assert "closed" in state(store, first).reason
    assert state(store, second).state is EntryState.MERGED


def test_mr_made_draft_meanwhile_fails_naming_the_rule(store, gitlab, driver):
    gitlab.add(1, draft=True, detailed_merge_status="draft_status")
    entry = queue(store, 1)
    driver.drive(LANE)
    failed = state(store, entry)
    assert failed.state is EntryState.FAILED and "draft" in failed.reason


def test_failed_pipeline_fails_the_entry(store, gitlab, driver):
    gitlab.add(1, head_pipeline=Pipeline(7, SHA1, "failed"))
    entry = queue(store, 1)
    driver.drive(LANE)
    assert state(store, entry).state is EntryState.FAILED
    assert "pipeline" in state(store, entry).reason


def test_rebase_then_conflict_fails_with_advice(store, gitlab, driver):
    gitlab.project = replace(gitlab.project, merge_method="ff")
    gitlab.add(1, detailed_merge_status="need_rebase")
    entry = queue(store, 1)
    assert driver.drive(LANE) == POLL_SECONDS
    assert state(store, entry).state is EntryState.REBASING and gitlab.rebases == 1
    assert driver.drive(LANE) == POLL_SECONDS  # still rebasing
    gitlab.mrs[1] = replace(gitlab.mrs[1], rebase_in_progress=False, merge_error="Rebase failed. Please rebase locally")
    driver.drive(LANE)
    failed = state(store, entry)
    assert failed.state is EntryState.FAILED and "Rebase locally" in failed.reason


def test_rebase_refused_fails(store, gitlab, driver):
    gitlab.project = replace(gitlab.project, merge_method="rebase_merge")
    gitlab.add(1, detailed_merge_status="need_rebase")
    entry = queue(store, 1)
    gitlab.merge_answers = [RebaseRefused(403, "Cannot push to source branch")]
    driver.drive(LANE)
    assert state(store, entry).state is EntryState.FAILED
    assert "Cannot push to source branch" in state(store, entry).reason


def test_successful_rebase_waits_for_the_new_pipeline(store, gitlab, driver):
    gitlab.project = replace(gitlab.project, merge_method="ff")
    gitlab.add(1, detailed_merge_status="need_rebase")
    entry = queue(store, 1)
    driver.drive(LANE)
    gitlab.mrs[1] = replace(gitlab.mrs[1], rebase_in_progress=False, sha=SHA2, detailed_merge_status="ci_still_running",
                            head_pipeline=Pipeline(3, SHA2, "running"))
    assert driver.drive(LANE) is None
    waiting = state(store, entry)
    assert waiting.state is EntryState.WAITING_PIPELINE and waiting.tested_sha == SHA2
    gitlab.mrs[1] = replace(gitlab.mrs[1], detailed_merge_status="mergeable", head_pipeline=Pipeline(3, SHA2, "success"))
    driver.drive(LANE)
    assert gitlab.merged_with == [SHA2]


def test_merged_outside_the_queue_is_recorded_without_merging(store, gitlab, driver):
    gitlab.add(1, state="merged", merge_commit_sha="e" * 40)
    entry = queue(store, 1)
    driver.drive(LANE)
    assert state(store, entry).state is EntryState.MERGED
    assert state(store, entry).reason == "merged outside the queue"
    assert gitlab.merged_with == []


def test_an_mr_queued_again_as_the_queue_merged_it_is_recorded_merged_once(store, gitlab, driver):
    """The race the stress test found: `retry` read the MR open and saw no active entry just before
    the lane merged it, so a second entry was added for a merged MR."""
    gitlab.add(1)
    first = queue(store, 1)
    driver.drive(LANE)
    assert state(store, first).state is EntryState.MERGED
    second = queue(store, 1)
    driver.drive(LANE)
    assert state(store, second).state is EntryState.CANCELLED
    assert state(store, second).reason == "the queue had already merged this MR"
    merged = [e for e in store.queue.all_entries() if e.mr_iid == 1 and e.state is EntryState.MERGED]
    assert [e.id for e in merged] == [first.id]


def test_a_lane_held_by_another_worker_is_left_alone(store, gitlab, driver):
    gitlab.add(1)
    entry = queue(store, 1)
    assert store.queue.acquire(LANE, "other-worker", 30) is not None
    assert driver.drive(LANE) == BUSY_RETRY_SECONDS
    assert state(store, entry).state is EntryState.QUEUED and gitlab.merged_with == []
