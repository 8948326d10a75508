"""Rule `approvals`: GitLab's approval rules are satisfied (WAIT at enqueue, REFUSE at merge)."""

from __future__ import annotations

from merge_assist.plugins._review_checks import wait_at_enqueue_refuse_at_merge
from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext

RULE = "approvals"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "The merge request has all the approvals its approval rules require.")


def missing_approvals(context: RuleContext) -> str | None:
    left = context.approvals.approvals_left
    if left > 0:
        return f"needs {left} more approval{'s' if left != 1 else ''}"
    if context.merge_request.detailed_merge_status == "not_approved":
        return "GitLab reports the merge request as not approved"
    return None


merge_assist_check_enqueue, merge_assist_check_merge = wait_at_enqueue_refuse_at_merge(RULE, missing_approvals)
