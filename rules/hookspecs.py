"""Hook specifications of Merge Assist: the contract between the bot and rule plugins.

A plugin is any module or object with functions named like the hooks below, marked with
`@hookimpl` (`from merge_assist import hookimpl`). Plugins may implement any subset of hooks and
any subset of each hook's parameters. Built-in plugins live in `plugins/`; third-party ones are
installed packages that declare an entry point in the `merge_assist` group (see
`examples/merge_assist_example_plugin`).

The engine (`rules.engine.RuleEngine`) calls each hook through pluggy, so the call order is
pluggy's: the last registered plugin first (installed plugins before the built-ins), changed
by `@hookimpl(tryfirst=True)` / `@hookimpl(trylast=True)`; `@hookimpl(wrapper=True)` wraps the
other implementations and may change the combined answer. Each implementation is isolated
(`rules.isolation`): one plugin raising never hides another plugin's answer. The "how results
combine" notes below describe what the engine does with the answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pluggy

from merge_assist.rules.commands import CommandSpec
from merge_assist.rules.model import Actor, Priority, RuleContext, Verdict

PROJECT_NAME = "merge_assist"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class OptionError(ValueError):
    """Raised by a rule's option validator: `key` is the option path inside the rule
    (e.g. "windows[0]"), `reason` says what is wrong with it."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


OptionValidator = Callable[[Mapping[str, Any]], None]


def _accept_any_options(options: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class RuleDescription:
    """How a rule describes itself, for help, status and configuration.

    `defaults` lists every option the rule accepts with its default value; configuration
    rejects any other key and any value whose type differs from the default's. `validate`
    gets the options one configuration layer sets (a subset of the keys) and raises
    `OptionError` for a value the type check cannot catch (a bad time window, a time zone).
    """

    name: str
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    option_help: Mapping[str, str] = field(default_factory=dict)
    validate: OptionValidator = _accept_any_options


ACCESS_GUEST = 10
ACCESS_DEVELOPER = 30


@dataclass(frozen=True)
class AuthRequest:
    """Someone asks to run a command on a merge request.

    `access_level` is the actor's effective GitLab access level on the project (0 when not a
    member or not linked to a GitLab user); `required_merge_level` is the lowest level allowed
    to merge into the target branch (protected-branch merge access, else Developer = 30);
    `roles` are the bot roles the actor holds for this project (`admin`, `project_owner`,
    `priority_manager`, `viewer`); `requested_priority` is the priority the command asks for,
    if any; `mutates` is False for read-only commands (status, help).
    """

    command: str
    actor: Actor
    project_id: int
    mr_iid: int
    target_branch: str
    access_level: int
    required_merge_level: int = ACCESS_DEVELOPER
    roles: frozenset[str] = frozenset()
    requested_priority: Priority | None = None
    mutates: bool = True


@dataclass(frozen=True)
class AuthDecision:
    """An authorization answer; `reason` is shown to the user when access is denied.
    `plugin` is filled in by the engine with the answering plugin's name."""

    allowed: bool
    reason: str = ""
    plugin: str = ""

    @classmethod
    def allow(cls, reason: str = "") -> "AuthDecision":
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str) -> "AuthDecision":
        return cls(False, reason)


@hookspec
def merge_assist_describe_rule() -> RuleDescription | None:
    """Describe the rule this plugin implements.

    Fires when the engine lists rules: at start-up, for help and status, and to build and
    validate configuration.

    :return: the rule's name, help summary, default options and option validator; None for a
        plugin that is not a rule (e.g. one that only adds commands). The rule's name is the
        key of its options in `.merge-assist.yml` (`rules.<name>`) and appears in verdicts.

    Results are not combined: each plugin answers for itself.
    """


@hookspec
def merge_assist_check_enqueue(context: RuleContext) -> Verdict | None:
    """Judge a merge request when a merge command arrives, before it enters the queue.

    :param context: the fresh MR, its project and approvals, `now`, and in
        `context.options` this rule's effective options (defaults overlaid with server,
        project and `.merge-assist.yml` settings). `context.entry` is None.
    :return: PASS; WAIT with a reason (the MR is still queued, the reason is told to the
        requester); REFUSE with a reason (the MR is not queued and the reply names the rule);
        None when the rule has no opinion at enqueue time.

    Results combine into a `Decision`: refuse beats wait beats pass. Rules disabled in the
    configuration are not asked.
    """


@hookspec
def merge_assist_check_merge(context: RuleContext) -> Verdict | None:
    """Judge the head entry of a lane each time the lane considers merging it.

    Fires before the rebase, after the pipeline finished and right before the merge call, so
    a rule sees every change of the MR while it waits in the queue.

    :param context: as for `merge_assist_check_enqueue`, plus `context.entry` (the queue
        entry) and `context.lane_paused`.
    :return: PASS; WAIT with a reason (the lane holds and the entry stays queued: a freeze
        window, a paused lane, a running pipeline); REFUSE with a reason (the entry is dropped
        to `failed` with that reason); None for no opinion.

    Results combine into a `Decision`: refuse beats wait beats pass.
    """


@hookspec
def merge_assist_adjust_priority(context: RuleContext, requested: Priority) -> Priority | None:
    """Compute the priority of a merge request when it is queued.

    :param context: the MR being queued and this rule's options.
    :param requested: the priority the command asked for (normal when not given).
    :return: the priority this plugin wants (e.g. from a `priority::high` label), or None to
        leave it alone.

    Results combine as the highest non-None answer; when every plugin answers None the
    requested priority stands.
    """


@hookspec
def merge_assist_authorize(request: AuthRequest) -> AuthDecision | None:
    """Decide whether an actor may run a command on a merge request.

    Fires for every command, before its handler runs.

    :param request: the command, the actor, their GitLab access level and bot roles, the
        branch's required merge level and the requested priority.
    :return: allow, deny (with the reason shown to the user), or None for no opinion.

    Results combine so that any deny wins; when no plugin allows, access is denied.
    """


@hookspec
def merge_assist_register_commands() -> list[CommandSpec] | None:
    """Offer commands (`/merge-assist <name> ...`) with their help and handler.

    Fires once when the engine builds its command table.

    :return: the commands this plugin offers (possibly empty; None offers none).

    Results combine into one table by command name; when two plugins offer the same name the
    later registered one (third-party plugins register after built-ins) wins.
    """


@hookspec
def merge_assist_before_merge(context: RuleContext) -> None:
    """Notification: the bot is about to merge the lane's head entry (all rules passed).

    :param context: the MR as it will be merged, with this plugin's rule options.

    Nothing is returned; a plugin raising is logged and counted, and the merge goes ahead.
    """


@hookspec
def merge_assist_after_merge(context: RuleContext, merge_commit_sha: str | None) -> None:
    """Notification: the merge request was merged.

    :param context: the MR as it was merged.
    :param merge_commit_sha: the merge commit GitLab reported (None for fast-forward merges
        or when GitLab did not say).

    Nothing is returned; a plugin raising is logged and counted.
    """


@hookspec
def merge_assist_merge_failed(context: RuleContext, reason: str) -> None:
    """Notification: the queue entry ended in `failed`.

    :param context: the MR as last read.
    :param reason: the human-readable reason stored on the entry.

    Nothing is returned; a plugin raising is logged and counted.
    """
