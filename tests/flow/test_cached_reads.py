"""The serial lane and the adapter's cached MR reads: a cached read only ever keeps an entry waiting.

`gitlab.cached` is what the adapter would hand out as the MR's cached read (one no webhook has
dropped); `gitlab.mrs` is what GitLab answers to a fresh read. When the two differ the cache is
stale, which is what a lost or not yet handled webhook looks like.
"""

from __future__ import annotations

from dataclasses import replace

from merge_assist.rules.model import Approvals, EntryState, Pipeline
from tests.flow.test_lane_driver import LANE, SHA1, SHA2, driver, gitlab, queue, state, store  # noqa: F401

RUNNING = Pipeline(1, SHA1, "running")


def waiting_entry(store, gitlab, driver, **fields):
    """An entry validated on SHA1 and waiting for its running pipeline; the read cached."""
    gitlab.add(1, head_pipeline=RUNNING, detailed_merge_status="ci_still_running", **fields)
    entry = queue(store, 1)
    assert driver.drive(LANE) is None
    assert state(store, entry).state is EntryState.WAITING_PIPELINE
    gitlab.cached[1] = gitlab.mrs[1]
    return entry


def test_a_quiet_recheck_answers_from_the_cache(store, gitlab, driver):
    entry = waiting_entry(store, gitlab, driver)
    reads = gitlab.reads
    assert driver.drive(LANE, poll=True) is None
    assert gitlab.reads == reads
    assert state(store, entry).state is EntryState.WAITING_PIPELINE


def test_the_command_read_starts_validation_without_a_second_read(store, gitlab, driver):
    gitlab.add(1, head_pipeline=RUNNING, detailed_merge_status="ci_still_running")
    gitlab.cached[1] = gitlab.mrs[1]
    entry = queue(store, 1)
    assert driver.drive(LANE) is None
    assert gitlab.reads == 0
    waiting = state(store, entry)
    assert waiting.state is EntryState.WAITING_PIPELINE and waiting.tested_sha == SHA1


def test_a_stale_pipeline_passed_is_not_merged_on(store, gitlab, driver):
    entry = waiting_entry(store, gitlab, driver)
    # The cache says the pipeline passed; GitLab says the author pushed SHA2 meanwhile.
    gitlab.cached[1] = replace(gitlab.mrs[1], head_pipeline=Pipeline(1, SHA1, "success"), detailed_merge_status="mergeable")
    gitlab.mrs[1] = replace(gitlab.mrs[1], sha=SHA2, head_pipeline=Pipeline(2, SHA2, "running"))
    driver.drive(LANE)
    assert gitlab.merged_with == []
    revalidated = state(store, entry)
    assert revalidated.state is EntryState.WAITING_PIPELINE and revalidated.tested_sha == SHA2


def test_a_merge_planned_on_a_cached_read_is_made_on_a_fresh_one(store, gitlab, driver):
    waiting_entry(store, gitlab, driver)
    passed = replace(gitlab.mrs[1], head_pipeline=Pipeline(1, SHA1, "success"), detailed_merge_status="mergeable")
    gitlab.cached[1] = gitlab.mrs[1] = passed
    reads = gitlab.reads
    driver.drive(LANE)
    assert gitlab.reads > reads and gitlab.merged_with == [SHA1]


def test_stale_approvals_are_not_trusted(store, gitlab, driver):
    entry = waiting_entry(store, gitlab, driver)
    gitlab.cached[1] = replace(gitlab.mrs[1], head_pipeline=Pipeline(1, SHA1, "success"), detailed_merge_status="mergeable")
    # An approval was withdrawn meanwhile: GitLab now says approvals are missing.
    gitlab.mrs[1] = replace(gitlab.cached[1], detailed_merge_status="not_approved")
    gitlab.get_approvals = lambda project_id, iid: Approvals(approvals_required=1, approvals_left=1)
    driver.drive(LANE)
    assert gitlab.merged_with == []
    assert "approval" in state(store, entry).reason  # judged on GitLab's answer, not the cache


def test_a_cached_read_never_fails_an_entry(store, gitlab, driver):
    entry = waiting_entry(store, gitlab, driver)
    gitlab.cached[1] = replace(gitlab.mrs[1], draft=True, detailed_merge_status="draft_status")
    driver.drive(LANE, poll=True)
    assert state(store, entry).state is EntryState.WAITING_PIPELINE  # GitLab says it is not a draft


def test_a_cached_read_of_an_older_head_does_not_move_the_entry_back(store, gitlab, driver):
    waiting_entry(store, gitlab, driver)
    gitlab.mrs[1] = replace(gitlab.mrs[1], sha=SHA2, head_pipeline=Pipeline(2, SHA2, "running"))
    gitlab.cached.clear()
    driver.drive(LANE)  # a webhook dropped the cache: the lane validates SHA2
    entry = store.queue.lane_entries(LANE)[0]
    assert entry.tested_sha == SHA2
    gitlab.cached[1] = replace(gitlab.mrs[1], sha=SHA1, head_pipeline=RUNNING)  # another process's older read
    driver.drive(LANE, poll=True)
    assert store.queue.get_entry(entry.id).tested_sha == SHA2


def test_a_cached_settling_status_is_looked_at_again_in_gitlab(store, gitlab, driver):
    entry = waiting_entry(store, gitlab, driver)
    gitlab.cached[1] = replace(gitlab.mrs[1], detailed_merge_status="checking")
    reads = gitlab.reads
    assert driver.drive(LANE) is None  # GitLab has finished checking: back to waiting for the pipeline
    assert gitlab.reads == reads + 1
    assert state(store, entry).state is EntryState.WAITING_PIPELINE
