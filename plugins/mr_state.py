"""Rule `mr_state`: only an open merge request can be queued or merged."""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "mr_state"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "The merge request is open (not closed, merged or locked).")


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    state = context.merge_request.state
    if state != "opened":
        return Verdict.refuse(RULE, f"the merge request is {state}")
    return Verdict.passed(RULE)


merge_assist_check_enqueue = merge_assist_check_merge
