"""Rule `discussions`: every blocking discussion is resolved (WAIT at enqueue, REFUSE at merge)."""

from __future__ import annotations

from merge_assist.plugins._review_checks import wait_at_enqueue_refuse_at_merge
from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext

RULE = "discussions"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "Every discussion that blocks merging is resolved.")


def unresolved_discussions(context: RuleContext) -> str | None:
    mr = context.merge_request
    if not mr.blocking_discussions_resolved or mr.detailed_merge_status == "discussions_not_resolved":
        return "unresolved discussions block merging"
    return None


merge_assist_check_enqueue, merge_assist_check_merge = wait_at_enqueue_refuse_at_merge(RULE, unresolved_discussions)
