"""Shared shape of review rules (approvals, discussions): a missing review WAITs at enqueue
(the MR is queued and the requester told, so a team can queue while the last reviewer
finishes) and REFUSEs at merge time (holding the whole lane for one reviewer would stall
every MR behind it)."""

from __future__ import annotations

from typing import Callable

from merge_assist.rules.hookspecs import hookimpl
from merge_assist.rules.model import RuleContext, Verdict

Problem = Callable[[RuleContext], str | None]
Check = Callable[[RuleContext], Verdict]


def wait_at_enqueue_refuse_at_merge(rule: str, problem: Problem) -> tuple[Check, Check]:
    """Hook implementations (check_enqueue, check_merge) for a review rule; `problem` returns
    the reason the review is incomplete, or None."""

    @hookimpl
    def check_enqueue(context: RuleContext) -> Verdict:
        reason = problem(context)
        return Verdict.wait(rule, reason) if reason else Verdict.passed(rule)

    @hookimpl
    def check_merge(context: RuleContext) -> Verdict:
        reason = problem(context)
        return Verdict.refuse(rule, reason) if reason else Verdict.passed(rule)

    return check_enqueue, check_merge
