"""Rule `draft`: a draft merge request is neither queued nor merged."""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "draft"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(RULE, "The merge request is not a draft.")


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    if context.merge_request.draft:
        return Verdict.refuse(RULE, "the merge request is a draft; mark it as ready first")
    return Verdict.passed(RULE)


merge_assist_check_enqueue = merge_assist_check_merge
