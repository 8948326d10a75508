"""Merge Assist plugin: the merge request title must reference a ticket such as `ABC-123`.

Adds the rule `ticket_reference` (option `pattern`, a regular expression) and the command
`/merge-assist ticket`, which replies with the ticket it found.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from merge_assist import (
    CommandHelp,
    CommandInvocation,
    CommandReply,
    CommandSpec,
    OptionError,
    RuleContext,
    RuleDescription,
    Verdict,
    hookimpl,
)

RULE = "ticket_reference"
DEFAULT_PATTERN = r"\b[A-Z][A-Z0-9]+-\d+\b"


def find_ticket(title: str, pattern: str = DEFAULT_PATTERN) -> str | None:
    match = re.search(pattern, title)
    return match.group(0) if match else None


def _validate(options: Mapping[str, Any]) -> None:
    if "pattern" in options:
        try:
            re.compile(options["pattern"])
        except re.error as exc:
            raise OptionError("pattern", f"not a regular expression: {exc}") from None


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "The merge request title references a ticket (e.g. `ABC-123`).",
        defaults={"pattern": DEFAULT_PATTERN},
        option_help={"pattern": "regular expression a ticket reference matches"},
        validate=_validate,
    )


@hookimpl
def merge_assist_check_enqueue(context: RuleContext) -> Verdict:
    pattern = context.options.get("pattern", DEFAULT_PATTERN)
    ticket = find_ticket(context.merge_request.title, pattern)
    if ticket is None:
        return Verdict.refuse(RULE, "the title references no ticket; add one like `ABC-123`")
    return Verdict.passed(RULE, ticket)


merge_assist_check_merge = merge_assist_check_enqueue

TICKET_HELP = CommandHelp(
    "ticket", "Show the ticket this merge request references.", usage="/merge-assist ticket",
    who_can_use="Anyone with at least Guest access", examples=("/merge-assist ticket",),
)


def _reply_with_ticket(invocation: CommandInvocation) -> CommandReply:
    mr = invocation.merge_request
    if mr is None:
        return CommandReply("Cannot see the merge request from here.", ok=False)
    ticket = find_ticket(mr.title)
    return CommandReply(f"Ticket: {ticket}" if ticket else "No ticket found in the title.")


@hookimpl
def merge_assist_register_commands() -> list[CommandSpec]:
    return [CommandSpec(TICKET_HELP, _reply_with_ticket, mutates=False)]
