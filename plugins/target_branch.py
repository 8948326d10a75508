"""Rule `target_branch`: only target branches matching the configured patterns are merged."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Mapping

from merge_assist.rules.hookspecs import OptionError, RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "target_branch"


def _validate(options: Mapping[str, Any]) -> None:
    for index, pattern in enumerate(options.get("patterns", [])):
        if not pattern.strip():
            raise OptionError(f"patterns[{index}]", "a branch pattern must not be empty")


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "The target branch matches one of the allowed patterns (all branches by default).",
        defaults={"patterns": ["*"]},
        option_help={"patterns": "shell-style patterns, e.g. [\"main\", \"release/*\"]"},
        validate=_validate,
    )


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    branch = context.merge_request.target_branch
    patterns = context.options.get("patterns", ["*"])
    if any(fnmatchcase(branch, pattern) for pattern in patterns):
        return Verdict.passed(RULE)
    allowed = ", ".join(f"`{pattern}`" for pattern in patterns) or "none"
    return Verdict.refuse(RULE, f"target branch `{branch}` is not handled by the bot (allowed: {allowed})")


merge_assist_check_enqueue = merge_assist_check_merge
