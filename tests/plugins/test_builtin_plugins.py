"""Table-driven verdicts of each built-in rule, called through the engine with its defaults."""

from __future__ import annotations

import pytest

from merge_assist.rules.model import Approvals, Outcome, Pipeline, Priority

SHA = "a" * 40  # the sha of the merge request built by make_context

P, W, R = Outcome.PASS, Outcome.WAIT, Outcome.REFUSE


def pipeline(status: str, sha: str = SHA, ref: str = "feature") -> Pipeline:
    return Pipeline(id=900, sha=sha, status=status, ref=ref)


MERGE_REF = "refs/merge-requests/42/merge"  # the MR built by make_context is !42


# (rule, hook, context changes, rule options, expected outcome, text expected in the reason)
CASES = [
    ("draft", "check_enqueue", {"mr": {"draft": True}}, {}, R, "draft"),
    ("draft", "check_merge", {}, {}, P, ""),
    ("mr_state", "check_enqueue", {"mr": {"state": "closed"}}, {}, R, "closed"),
    ("mr_state", "check_merge", {"mr": {"state": "merged"}}, {}, R, "merged"),
    ("mr_state", "check_merge", {}, {}, P, ""),
    ("approvals", "check_enqueue", {"approvals": Approvals(2, 1)}, {}, W, "needs 1 more approval"),
    ("approvals", "check_merge", {"approvals": Approvals(2, 2)}, {}, R, "needs 2 more approvals"),
    ("approvals", "check_merge", {"mr": {"detailed_merge_status": "not_approved"}}, {}, R, "not approved"),
    ("approvals", "check_merge", {"approvals": Approvals(2, 0)}, {}, P, ""),
    ("discussions", "check_enqueue", {"mr": {"blocking_discussions_resolved": False}}, {}, W, "unresolved"),
    ("discussions", "check_merge", {"mr": {"blocking_discussions_resolved": False}}, {}, R, "unresolved"),
    ("discussions", "check_merge", {}, {}, P, ""),
    ("conflicts", "check_enqueue", {"mr": {"has_conflicts": True}}, {}, R, "rebase locally"),
    ("conflicts", "check_merge", {"mr": {"detailed_merge_status": "conflict"}}, {}, R, "rebase locally"),
    ("conflicts", "check_merge", {}, {}, P, ""),
    ("labels", "check_enqueue", {}, {"required": ["ready"]}, R, 'required label ~"ready" is missing'),
    ("labels", "check_enqueue", {"mr": {"labels": ("ready",)}}, {"required": ["ready"]}, P, ""),
    ("labels", "check_merge", {"mr": {"labels": ("ready", "do-not-merge")}},
     {"required": ["ready"], "blocking": ["do-not-merge"]}, R, 'blocking label ~"do-not-merge"'),
    ("labels", "check_merge", {"mr": {"labels": ("wip",)}}, {}, P, ""),
    ("target_branch", "check_enqueue", {}, {}, P, ""),
    ("target_branch", "check_enqueue", {"mr": {"target_branch": "release/1.2"}},
     {"patterns": ["main", "release/*"]}, P, ""),
    ("target_branch", "check_merge", {"mr": {"target_branch": "develop"}},
     {"patterns": ["main", "release/*"]}, R, "`develop` is not handled"),
    ("pause", "check_merge", {"lane_paused": True}, {}, W, "lane paused by an admin"),
    ("pause", "check_merge", {}, {}, P, ""),
    ("pipeline", "check_merge", {}, {}, P, ""),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("running")}}, {}, W, "pipeline running"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("pending")}}, {}, W, "pipeline running"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("created")}}, {}, W, "pipeline running"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("failed")}}, {}, R, "pipeline 900 failed"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("canceled")}}, {}, R, "canceled"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("manual")}}, {}, W, "manual"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("skipped")}}, {}, R, "skipped"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("skipped")}},
     {"skipped_is_success": True}, P, "skipped"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("skipped")},
                                 "project": {"allow_merge_on_skipped_pipeline": True}}, {}, P, "skipped"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": None}}, {}, W, "waiting for a pipeline"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("success", sha="b" * 40)}}, {}, W,
     "waiting for a pipeline on aaaaaaaa"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": None},
                                 "project": {"only_allow_merge_if_pipeline_succeeds": False}}, {}, P,
     "no pipeline required"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("success", sha="c" * 40, ref=MERGE_REF)}},
     {}, P, ""),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("failed", sha="c" * 40, ref=MERGE_REF)}},
     {}, R, "failed"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline("success", sha="c" * 40, ref=MERGE_REF),
                                        "detailed_merge_status": "ci_still_running"}}, {}, W, "latest commit"),
    ("pipeline", "check_merge", {"mr": {"head_pipeline": pipeline(
        "success", sha="c" * 40, ref="refs/merge-requests/7/merge")}}, {}, W, "waiting for a pipeline"),
]


@pytest.mark.parametrize(
    "rule, hook, changes, options, expected, reason", CASES,
    ids=[f"{case[0]}-{case[1]}-{index}" for index, case in enumerate(CASES)],
)
def test_builtin_rule_verdicts(engine, make_context, rule, hook, changes, options, expected, reason):
    context = make_context(**changes)
    decision = getattr(engine, hook)(context, {rule: options})
    [verdict] = [v for v in decision.verdicts if v.rule == rule]
    assert verdict.outcome is expected
    assert reason in verdict.reason


@pytest.mark.parametrize("rule", ["pipeline", "pause", "freeze"])
def test_merge_time_rules_do_not_judge_at_enqueue(engine, make_context, rule):
    busy = make_context(mr={"head_pipeline": pipeline("running")}, lane_paused=True)
    verdicts = engine.check_enqueue(busy, {"freeze": {"windows": ["Monday 00:00 - Sunday 23:59"]}}).verdicts
    assert rule not in {verdict.rule for verdict in verdicts}


def test_a_ready_merge_request_passes_every_builtin_rule(engine, make_context):
    assert engine.check_enqueue(make_context()).outcome is Outcome.PASS
    decision = engine.check_merge(make_context())
    assert decision.outcome is Outcome.PASS
    assert [v.rule for v in decision.verdicts] == [
        "mr_state", "draft", "target_branch", "labels", "conflicts", "discussions", "approvals",
        "pipeline", "freeze", "pause",
    ]


@pytest.mark.parametrize("labels, requested, expected", [
    ((), Priority.NORMAL, Priority.NORMAL),
    (("priority::high",), Priority.NORMAL, Priority.HIGH),
    (("priority::urgent", "priority::high"), Priority.LOW, Priority.URGENT),
    (("Priority::Low",), Priority.NORMAL, Priority.LOW),  # lowers a default request
    (("priority::low",), Priority.URGENT, Priority.URGENT),  # never lowers an explicit request
    (("priority::bogus",), Priority.NORMAL, Priority.NORMAL),
])
def test_priority_labels(engine, make_context, labels, requested, expected):
    assert engine.adjust_priority(make_context(mr={"labels": labels}), requested) is expected


def test_priority_labels_prefix_option(engine, make_context):
    context = make_context(mr={"labels": ("prio/high",)})
    assert engine.adjust_priority(context, Priority.NORMAL, {"priority_labels": {"prefix": "prio/"}}) is Priority.HIGH
