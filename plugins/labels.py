"""Rule `labels`: required labels must be present and blocking labels absent."""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "labels"


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "The merge request carries every required label and no blocking label.",
        defaults={"required": [], "blocking": []},
        option_help={
            "required": "labels the merge request must have, e.g. [\"ready\"]",
            "blocking": "labels that keep it from merging, e.g. [\"do-not-merge\"]",
        },
    )


def _quoted(labels: list[str]) -> str:
    return ", ".join(f"~\"{label}\"" for label in labels)


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    present = set(context.merge_request.labels)
    blocking = [label for label in context.options.get("blocking", []) if label in present]
    if blocking:
        return Verdict.refuse(RULE, f"blocking label {_quoted(blocking)} is set")
    missing = [label for label in context.options.get("required", []) if label not in present]
    if missing:
        return Verdict.refuse(RULE, f"required label {_quoted(missing)} is missing")
    return Verdict.passed(RULE)


merge_assist_check_enqueue = merge_assist_check_merge
