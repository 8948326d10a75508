"""Built-in commands: merge, cancel, priority, retry, status, help.

Handlers only parse arguments and call the bot's `CommandServices`.
"""

from __future__ import annotations

from typing import Callable

from merge_assist.rules.commands import CommandInvocation, CommandReply, CommandServices, CommandSpec, usage_error
from merge_assist.rules.hookspecs import hookimpl
from merge_assist.rules.model import CommandHelp, Priority

LEVELS = "|".join(priority.label for priority in Priority)
MERGE_RIGHTS = "Anyone allowed to merge into the target branch"

MERGE = CommandHelp(
    "merge", "Queue this merge request; the bot rebases it, waits for its pipeline and merges it.",
    usage=f"/merge-assist merge [--priority {LEVELS}]",
    who_can_use=f"{MERGE_RIGHTS}; a priority above normal also needs the admin, project_owner or "
                "priority_manager role",
    examples=("/merge-assist merge", "/merge-assist merge --priority high"),
)
CANCEL = CommandHelp(
    "cancel", "Take this merge request out of the queue.", usage="/merge-assist cancel",
    who_can_use=MERGE_RIGHTS, examples=("/merge-assist cancel",),
)
PRIORITY = CommandHelp(
    "priority", "Change the priority of this queued merge request.",
    usage=f"/merge-assist priority <{LEVELS}>",
    who_can_use=f"{MERGE_RIGHTS}; above normal also needs the admin, project_owner or priority_manager role",
    examples=("/merge-assist priority urgent", "/merge-assist priority low"),
)
RETRY = CommandHelp(
    "retry", "Queue a failed merge request again with its previous priority.", usage="/merge-assist retry",
    who_can_use=MERGE_RIGHTS, examples=("/merge-assist retry",),
)
STATUS = CommandHelp(
    "status", "Show every rule's verdict for this merge request and its place in the queue.",
    usage="/merge-assist status", who_can_use="Anyone with at least Guest access; unlinked Slack users",
    examples=("/merge-assist status",),
)
HELP = CommandHelp(
    "help", "List the commands and rules of this bot.", usage="/merge-assist help",
    who_can_use="Anyone with at least Guest access; unlinked Slack users", examples=("/merge-assist help",),
)


def parse_merge_priority(args: tuple[str, ...]) -> Priority:
    """`()` → normal; `--priority X`, `--priority=X` or `-p X` → X; anything else → ValueError."""
    if not args:
        return Priority.NORMAL
    if len(args) == 1 and args[0].startswith("--priority="):
        return Priority.parse(args[0].split("=", 1)[1])
    if len(args) == 2 and args[0] in ("--priority", "-p"):
        return Priority.parse(args[1])
    raise ValueError(f"unexpected arguments: {' '.join(args)}")


def parse_level(args: tuple[str, ...]) -> Priority:
    if len(args) != 1:
        raise ValueError("give exactly one priority")
    return Priority.parse(args[0])


def _lenient(parse: Callable[[tuple[str, ...]], Priority]) -> Callable[[tuple[str, ...]], Priority | None]:
    """For authorization: the priority asked for, or None when the arguments are bad (the
    handler then answers with the usage)."""

    def requested(args: tuple[str, ...]) -> Priority | None:
        try:
            return parse(args)
        except ValueError:
            return None

    return requested


def _with_priority(
    help_: CommandHelp, parse: Callable[[tuple[str, ...]], Priority],
    action: Callable[[CommandServices, Priority], str],
) -> CommandSpec:
    def handler(invocation: CommandInvocation) -> CommandReply:
        try:
            priority = parse(invocation.args)
        except ValueError as exc:
            return usage_error(help_, str(exc))
        return CommandReply(action(invocation.services, priority))

    return CommandSpec(help_, handler, mutates=True, requested_priority=_lenient(parse))


def _without_args(help_: CommandHelp, action: Callable[[CommandServices], str], *, mutates: bool) -> CommandSpec:
    def handler(invocation: CommandInvocation) -> CommandReply:
        if invocation.args:
            return usage_error(help_, f"`{help_.name}` takes no arguments")
        return CommandReply(action(invocation.services))

    return CommandSpec(help_, handler, mutates=mutates)


@hookimpl
def merge_assist_register_commands() -> list[CommandSpec]:
    return [
        _with_priority(MERGE, parse_merge_priority, lambda services, priority: services.enqueue(priority)),
        _without_args(CANCEL, lambda services: services.cancel(), mutates=True),
        _with_priority(PRIORITY, parse_level, lambda services, priority: services.set_priority(priority)),
        _without_args(RETRY, lambda services: services.retry(), mutates=True),
        _without_args(STATUS, lambda services: services.status(), mutates=False),
        _without_args(HELP, lambda services: services.help(), mutates=False),
    ]
