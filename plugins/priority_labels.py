"""Rule `priority_labels`: a `priority::<level>` label sets the queue priority.

Labels only raise an explicitly requested priority; `priority::low` lowers a request made at
the default (normal) priority. So `merge --priority urgent` is never slowed by a label.
"""

from __future__ import annotations

from typing import Any, Mapping

from merge_assist.rules.hookspecs import OptionError, RuleDescription, hookimpl
from merge_assist.rules.model import Priority, RuleContext

RULE = "priority_labels"


def _validate(options: Mapping[str, Any]) -> None:
    if "prefix" in options and not options["prefix"].strip():
        raise OptionError("prefix", "the label prefix must not be empty")


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "A `priority::urgent`, `priority::high` or `priority::low` label sets the queue priority.",
        defaults={"prefix": "priority::"},
        option_help={"prefix": "label prefix before the level name"},
        validate=_validate,
    )


def label_priority(labels: tuple[str, ...], prefix: str) -> Priority | None:
    found: list[Priority] = []
    for label in labels:
        if label.lower().startswith(prefix.lower()):
            try:
                found.append(Priority.parse(label[len(prefix):]))
            except ValueError:
                continue
    return max(found) if found else None


@hookimpl
def merge_assist_adjust_priority(context: RuleContext, requested: Priority) -> Priority | None:
    from_label = label_priority(context.merge_request.labels, context.options.get("prefix", "priority::"))
    if from_label is None:
        return None
    if requested == Priority.NORMAL:
        return from_label
    return max(requested, from_label)
