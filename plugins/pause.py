"""Rule `pause`: an admin can pause a lane; its entries stay queued until it is resumed."""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "pause"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "The lane (target branch) is not paused by an admin.")


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    if context.lane_paused:
        return Verdict.wait(RULE, "lane paused by an admin")
    return Verdict.passed(RULE)
