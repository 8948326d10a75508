"""The lane planner, table-driven: a snapshot in, one action out, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from merge_assist.rules import lane_plan as a
from merge_assist.rules.lane_plan import LaneSnapshot, head_of, plan
from merge_assist.rules.model import (
    Decision, EntryState, MergeRequest, Pipeline, Priority, Project, QueueEntry, Verdict,
)

SHA, NEW = "a" * 40, "b" * 40
NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)
PASS = Decision((Verdict.passed("pipeline"),))
WAIT = Decision((Verdict.wait("pipeline", "the pipeline is running"),))
REFUSE = Decision((Verdict.refuse("draft", "it is a draft"),))


def entry(state: EntryState = EntryState.WAITING_PIPELINE, **fields: object) -> QueueEntry:
    base = QueueEntry(id=1, project_id=1, mr_iid=7, target_branch="main", priority=Priority.NORMAL, state=state,
                      requested_by="dev", enqueued_at=NOW, updated_at=NOW, reason="", attempts=0,
                      tested_sha=SHA, pipeline_id=None, note_id=None)
    return replace(base, **fields)  # type: ignore[arg-type]


def mr(**fields: object) -> MergeRequest:
    base = MergeRequest(project_id=1, iid=7, title="t", author_id=2, author_username="dev", source_branch="f",
                        target_branch="main", state="opened", sha=SHA, head_pipeline=Pipeline(1, SHA, "success"),
                        detailed_merge_status="mergeable")
    return replace(base, **fields)  # type: ignore[arg-type]


MERGE_COMMIT = Project(1, "acme/app", merge_method="merge")
FF = Project(1, "acme/app", merge_method="ff")

CASES = [
    ("merged by us before a crash", entry(EntryState.MERGING), mr(state="merged", merge_commit_sha=NEW), FF, None,
     a.RecordMerged("merged", NEW)),
    ("merged outside the queue", entry(), mr(state="merged", merge_commit_sha=NEW), FF, None,
     a.RecordMerged("merged outside the queue", NEW)),
    ("closed", entry(), mr(state="closed"), FF, None, a.Cancel("the merge request was closed")),
    ("rebase running", entry(EntryState.REBASING), mr(rebase_in_progress=True), FF, None,
     a.Wait("GitLab is rebasing it", a.POLL_SECONDS)),
    ("rebase failed", entry(EntryState.REBASING), mr(merge_error="conflict"), FF, None,
     a.Fail("GitLab could not rebase it (conflict). Rebase locally and push.", "rebase_failed")),
    ("rebase failed because someone pushed meanwhile: the new head is checked",
     entry(EntryState.REBASING, tested_sha=SHA), mr(sha=NEW, merge_error="Rebase failed"), FF, None,
     a.Validate(f"new commits arrived during the rebase; checking {NEW[:12]}", NEW)),
    ("rebased", entry(EntryState.REBASING), mr(sha=NEW), FF, None,
     a.Validate(f"rebased; waiting for the pipeline of {NEW[:12]}", NEW)),
    ("GitLab still checking", entry(), mr(detailed_merge_status="checking"), FF, None,
     a.Wait("GitLab is still checking whether it can merge", a.POLL_SECONDS)),
    ("needs rebase", entry(), mr(detailed_merge_status="need_rebase"), FF, None,
     a.Rebase("bringing it up to date with main")),
    ("needs rebase, merge commits don't", entry(), mr(detailed_merge_status="need_rebase"), MERGE_COMMIT, None,
     a.CheckRules("checking the rules")),
    ("target keeps moving", entry(attempts=3), mr(detailed_merge_status="need_rebase"), FF, None,
     a.Fail("the target branch kept moving (3 rebases). Try again later.", "target_moving")),
    ("rules not read yet", entry(), mr(), FF, None, a.CheckRules("checking the rules")),
    ("a rule refuses", entry(), mr(), FF, REFUSE, a.Fail(REFUSE.explain(), "rule_refused")),
    ("fresh entry", entry(EntryState.QUEUED, tested_sha=None), mr(), FF, PASS, a.Validate(f"validating {SHA[:12]}", SHA)),
    ("source pushed", entry(), mr(sha=NEW), FF, WAIT,
     a.Validate(f"the source branch moved to {NEW[:12]}; validating again", NEW)),
    ("rules say wait, new reason", entry(), mr(), FF, WAIT, a.NoteReason(WAIT.explain())),
    ("rules say wait, same reason", entry(reason=WAIT.explain()), mr(), FF, WAIT, a.Wait(WAIT.explain())),
    ("all pass", entry(), mr(), FF, PASS, a.Merge(f"merging {SHA[:12]}", SHA)),
    ("resumed in merging", entry(EntryState.MERGING), mr(), FF, PASS, a.Merge(f"merging {SHA[:12]}", SHA)),
]


@pytest.mark.parametrize(("case", "the_entry", "the_mr", "project", "decision", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_plan(case: str, the_entry: QueueEntry, the_mr: MergeRequest, project: Project,
              decision: Decision | None, expected: a.Action) -> None:
    assert plan(LaneSnapshot(the_entry, the_mr, project, decision)) == expected


def test_head_of_keeps_an_entry_in_the_middle_of_a_merge_or_rebase() -> None:
    waiting = entry(EntryState.WAITING_PIPELINE, id=1, priority=Priority.URGENT)
    merging = entry(EntryState.MERGING, id=2)
    assert head_of([waiting, merging]) == merging
    assert head_of([waiting, entry(EntryState.QUEUED, id=3)]) == waiting
    assert head_of([]) is None


FOLLOWS_CACHED_READ = [
    (a.Wait("the pipeline is running"), entry(), True),
    (a.NoteReason("the pipeline is running"), entry(), True),
    (a.Validate("validating", SHA), entry(EntryState.QUEUED, tested_sha=None), True),
    (a.Wait("GitLab is still checking whether it can merge", a.POLL_SECONDS), entry(), False),
    (a.Validate("the source branch moved", NEW), entry(), False),
    (a.Merge("merging", SHA), entry(), False),
    (a.Rebase("bringing it up to date"), entry(), False),
    (a.Fail("it is a draft", "rule_refused"), entry(), False),
    (a.Cancel("the merge request was closed"), entry(), False),
    (a.RecordMerged("merged outside the queue", NEW), entry(), False),
]


@pytest.mark.parametrize("action, queued, allowed", FOLLOWS_CACHED_READ, ids=lambda v: type(v).__name__)
def test_a_cached_read_only_keeps_an_entry_waiting(action: a.Action, queued: QueueEntry, allowed: bool) -> None:
    assert a.may_follow_cached_read(action, queued) is allowed
