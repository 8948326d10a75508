"""Rule `conflicts`: a merge request that conflicts with its target branch cannot be rebased
by the bot, so it is refused with advice instead of holding the lane."""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "conflicts"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "The merge request has no conflicts with its target branch.")


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    mr = context.merge_request
    if mr.has_conflicts or mr.detailed_merge_status == "conflict":
        return Verdict.refuse(
            RULE,
            f"conflicts with `{mr.target_branch}`: rebase locally, resolve the conflicts, "
            "push and ask again",
        )
    return Verdict.passed(RULE)


merge_assist_check_enqueue = merge_assist_check_merge
