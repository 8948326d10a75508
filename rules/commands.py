"""Command types: what a plugin registers for `/merge-assist <command>` and what a handler gets.

Handlers only parse their arguments and call `CommandServices`, which the bot implements
(queue, store, GitLab). So a command's behaviour can be tested with a fake services object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from merge_assist.rules.model import Actor, CommandHelp, MergeRequest, Priority


class CommandServices(Protocol):
    """What a command handler may ask the bot to do for the MR the command was given on.

    Each method carries out the action (authorization already happened) and returns the text
    to reply with, or raises `CommandRefused` with the text when it declines.
    """

    def enqueue(self, priority: Priority) -> str: ...

    def cancel(self) -> str: ...

    def set_priority(self, priority: Priority) -> str: ...

    def retry(self) -> str: ...

    def status(self) -> str: ...

    def help(self) -> str: ...


class CommandRefused(Exception):
    """Raised by a `CommandServices` method that declines (a rule refused, nothing to cancel…);
    the message is the reply, and the command counts as refused in replies and the audit."""


@dataclass(frozen=True)
class CommandReply:
    """The answer posted back (MR comment or Slack reply); ok=False marks a refusal or misuse."""

    text: str
    ok: bool = True


@dataclass(frozen=True)
class CommandInvocation:
    """One command as given: `/merge-assist merge --priority high` → name="merge",
    args=("--priority", "high"). `merge_request` is the bot's fresh read of the MR, for
    read-only commands that need its fields (None when the bot did not read it)."""

    name: str
    args: tuple[str, ...]
    actor: Actor
    project_id: int
    mr_iid: int
    note_id: int | None
    services: CommandServices
    merge_request: MergeRequest | None = None


CommandHandler = Callable[[CommandInvocation], CommandReply]
PriorityParser = Callable[[tuple[str, ...]], Priority | None]


@dataclass(frozen=True)
class CommandSpec:
    """A command a plugin offers.

    `mutates` tells authorization whether the command changes anything (read-only commands are
    open to guests and unlinked Slack users). `requested_priority` parses, without side
    effects, the priority the arguments ask for, so that authorization can check it before the
    handler runs; None for commands that never set a priority.
    """

    help: CommandHelp
    handler: CommandHandler
    mutates: bool = True
    requested_priority: PriorityParser | None = None

    @property
    def name(self) -> str:
        return self.help.name


def usage_error(spec_help: CommandHelp, problem: str) -> CommandReply:
    """The reply for bad arguments: what was wrong and the command's usage."""
    return CommandReply(f"{problem}\n\nUsage: `{spec_help.usage}`", ok=False)
