"""The rule engine: calls the hooks through pluggy and combines the plugins' answers.

Hooks are called through `pm.hook.<name>(...)`, so call order, `tryfirst`, `trylast` and
wrappers behave as pluggy documents (last registered first: installed plugins before the
built-ins). Every implementation is isolated (`rules.isolation`): a plugin that raises is
logged (logger `merge_assist.rules`, with the plugin's name), counted in
`merge_assist_plugin_errors_total{plugin,hook}`, and its answer replaced according to its
rule's `on_error` option:

- `hold` (default for built-in rules): the crash counts as WAIT "rule <name> failed: <Exc>".
  Built-ins are the safety rules (pipeline, approvals, ...): merging without them is worse
  than holding a lane until someone looks.
- `ignore` (default for third-party plugins): the crash counts as PASS "crashed, ignored:
  <Exc>", visible in status and metrics, so that one broken add-on cannot stop every lane.

The same policy applies to `merge_assist_authorize` (hold = deny). Crashes in priority,
describe, command and notification hooks are logged and counted, and the answer left out.
An answer of the wrong type counts as a crash.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable, Mapping

from merge_assist.rules.commands import CommandInvocation, CommandRefused, CommandReply, CommandSpec
from merge_assist.rules.errors import ServiceFailure, TransientGitLabError
from merge_assist.rules.hookspecs import AuthDecision, AuthRequest, RuleDescription
from merge_assist.rules.isolation import Answerer, CrashRecorder, HookCall, keep_answer, leave_out
from merge_assist.rules.metrics import METRICS, Metrics
from merge_assist.rules.model import Decision, Priority, RuleContext, Verdict
from merge_assist.rules.plugins import MergeAssistPluginManager

RuleOptions = Mapping[str, Mapping[str, Any]]
"""Effective options by rule name, as in `rules.config.ConfigResult.effective`."""

ON_ERROR_HOLD = "hold"
ON_ERROR_IGNORE = "ignore"
ON_ERROR_CHOICES = (ON_ERROR_HOLD, ON_ERROR_IGNORE)
CONTROL_OPTIONS = ("enabled", "on_error")
"""Options every rule has, on top of the ones it describes."""


def _wrong_type(value: object, expected: type) -> TypeError:
    return TypeError(f"returned {type(value).__name__}, expected {expected.__name__}")


def _description(answerer: Answerer, value: object) -> RuleDescription:
    if not isinstance(value, RuleDescription):
        raise _wrong_type(value, RuleDescription)
    return value


def _verdict_of_rule(answerer: Answerer, value: object) -> Verdict:
    if not isinstance(value, Verdict):
        raise _wrong_type(value, Verdict)
    return replace(value, rule=answerer.rule)  # a plugin speaks for its own rule only


def _crash_verdict(answerer: Answerer, exc: Exception) -> Verdict:
    exc_name = type(exc).__name__
    if answerer.on_error == ON_ERROR_IGNORE:
        return Verdict.passed(answerer.rule, f"crashed, ignored: {exc_name}")
    return Verdict.wait(answerer.rule, f"rule {answerer.rule} failed: {exc_name}")


def _decision_of_plugin(answerer: Answerer, value: object) -> AuthDecision:
    if not isinstance(value, AuthDecision):
        raise _wrong_type(value, AuthDecision)
    return replace(value, plugin=answerer.plugin)


def _crash_decision(answerer: Answerer, exc: Exception) -> AuthDecision | None:
    if answerer.on_error == ON_ERROR_IGNORE:
        return None
    return AuthDecision(False, f"authorization check {answerer.plugin} failed", answerer.plugin)


def _priority(answerer: Answerer, value: object) -> Priority:
    if not isinstance(value, int):
        raise _wrong_type(value, Priority)
    try:
        return Priority(value)
    except ValueError:
        raise TypeError(f"returned {value!r}, expected a Priority") from None


def _command_list(answerer: Answerer, value: object) -> list[CommandSpec]:
    if not isinstance(value, list):
        raise _wrong_type(value, list)
    return [spec for spec in value if isinstance(spec, CommandSpec)]


class RuleEngine:
    """Runs the hooks of a plugin manager built by `rules.plugins.build_plugin_manager`."""

    def __init__(self, pm: MergeAssistPluginManager, metrics: Metrics = METRICS) -> None:
        self._pm = pm
        self._metrics = metrics
        self._recorder = CrashRecorder(metrics)
        self._rule_of_plugin: dict[str, str] = {}
        self._descriptions: dict[str, RuleDescription] = {}
        # Plugins are fixed once the manager is built, so rules are described once, up front.
        self._descriptions = self._describe_plugins()
        self._command_table: dict[str, tuple[str, CommandSpec]] | None = None

    # -- rules and their options -------------------------------------------------------------

    def describe_rules(self) -> list[RuleDescription]:
        """Every registered rule's description, in the order the rules are asked (pluggy's call
        order: installed plugins, then the built-ins in `BUILTIN_PLUGINS` order)."""
        return list(self._descriptions.values())

    def default_options(self) -> dict[str, dict[str, Any]]:
        """The first configuration layer: each rule's defaults plus `enabled` and `on_error`.

        Only described rules are configurable: plugins that are not rules (authorization,
        commands) cannot be switched off by a project's `.merge-assist.yml`.
        """
        return {
            rule: self._options_for(plugin_name, rule, None)
            for plugin_name, rule in self._rule_of_plugin.items()
            if rule in self._descriptions
        }

    def _describe_plugins(self) -> dict[str, RuleDescription]:
        call = self._hook_call("merge_assist_describe_rule", None, accept=_description)
        with call.active():
            self._pm.hook.merge_assist_describe_rule()
        descriptions: dict[str, RuleDescription] = {}
        for answerer, description in call.answers:
            if isinstance(description, RuleDescription):
                descriptions[description.name] = description
                self._rule_of_plugin[answerer.plugin] = description.name
        return descriptions

    def _default_on_error(self, plugin_name: str) -> str:
        return ON_ERROR_HOLD if self._pm.is_builtin(plugin_name) else ON_ERROR_IGNORE

    def _options_for(self, plugin_name: str, rule: str, options: RuleOptions | None) -> dict[str, Any]:
        description = self._descriptions.get(rule)
        merged: dict[str, Any] = {"enabled": True, "on_error": self._default_on_error(plugin_name)}
        merged.update(description.defaults if description else {})
        merged.update((options or {}).get(rule, {}))
        return copy.deepcopy(merged)  # a rule changing its options must not change anyone else's

    def _hook_call(
        self, hook_name: str, options: RuleOptions | None, *,
        accept: Callable[[Answerer, object], object] = keep_answer,
        on_crash: Callable[[Answerer, Exception], object] = leave_out,
    ) -> HookCall:
        """A call of `hook_name` in which each plugin gets its rule's options from `options`
        (rules disabled there are skipped; None: defaults, nobody skipped); `accept` and
        `on_crash` as in `HookCall`."""

        def answerer(plugin_name: str) -> Answerer:
            rule = self._rule_of_plugin.get(plugin_name, plugin_name)
            return Answerer(plugin_name, rule, self._options_for(plugin_name, rule, options))

        return HookCall(hook_name, self._recorder, answerer, accept, on_crash)

    # -- checks ------------------------------------------------------------------------------

    def check_enqueue(self, context: RuleContext, options: RuleOptions | None = None) -> Decision:
        """Ask every enabled rule whether the MR may enter the queue."""
        return self._check("merge_assist_check_enqueue", context, options)

    def check_merge(self, context: RuleContext, options: RuleOptions | None = None) -> Decision:
        """Ask every enabled rule whether the lane's head entry may merge now."""
        return self._check("merge_assist_check_merge", context, options)

    def _check(self, hook_name: str, context: RuleContext, options: RuleOptions | None) -> Decision:
        call = self._hook_call(hook_name, options, accept=_verdict_of_rule, on_crash=_crash_verdict)
        with call.active():
            verdicts = getattr(self._pm.hook, hook_name)(context=context)
        return Decision(tuple(verdicts))

    def adjust_priority(
        self, context: RuleContext, requested: Priority, options: RuleOptions | None = None,
    ) -> Priority:
        """The highest priority any plugin asks for, else `requested`."""
        call = self._hook_call("merge_assist_adjust_priority", options, accept=_priority)
        with call.active():
            wanted: list[Priority] = self._pm.hook.merge_assist_adjust_priority(context=context, requested=requested)
        return max(wanted) if wanted else requested

    # -- authorization -----------------------------------------------------------------------

    def authorize(self, request: AuthRequest) -> AuthDecision:
        """Any deny wins; without any allow, access is denied."""
        call = self._hook_call("merge_assist_authorize", None, accept=_decision_of_plugin,
                               on_crash=_crash_decision)
        with call.active():
            decisions: list[AuthDecision] = self._pm.hook.merge_assist_authorize(request=request)
        denied = [decision for decision in decisions if not decision.allowed]
        if denied:
            return denied[0]
        if decisions:
            return decisions[0]
        return AuthDecision(False, f"nobody may run `{request.command}` here", "")

    # -- commands ----------------------------------------------------------------------------

    def commands(self) -> dict[str, CommandSpec]:
        """Command table by name; when two plugins offer one name, the one pluggy calls first
        (the later registered, unless `tryfirst`/`trylast` say otherwise) wins."""
        return {name: spec for name, (_, spec) in self._commands().items()}

    def _commands(self) -> dict[str, tuple[str, CommandSpec]]:
        if self._command_table is None:
            call = self._hook_call("merge_assist_register_commands", None, accept=_command_list)
            with call.active():
                self._pm.hook.merge_assist_register_commands()
            table: dict[str, tuple[str, CommandSpec]] = {}
            for answerer, specs in reversed(call.answers):
                for spec in specs if isinstance(specs, list) else ():
                    table[spec.name] = (answerer.plugin, spec)
            self._command_table = table
        return self._command_table

    def run_command(self, invocation: CommandInvocation) -> CommandReply:
        """Run a command's handler (authorization must already have allowed it).

        An unknown command or a handler that raises gets an ok=False reply, never an exception.
        """
        found = self._commands().get(invocation.name)
        if found is None:
            return CommandReply(f"Unknown command `{invocation.name}`. Try `/merge-assist help`.", ok=False)
        plugin_name, spec = found
        try:
            reply = spec.handler(invocation)
            self._metrics.command(invocation.name, "ok" if reply.ok else "declined")
            return reply
        except CommandRefused as refusal:
            self._metrics.command(invocation.name, "refused")
            return CommandReply(str(refusal), ok=False)
        except (ServiceFailure, TransientGitLabError):
            raise  # the bot's own failure: the event is retried, the MR is not refused
        except Exception as exc:
            self._metrics.command(invocation.name, "crashed")
            self._recorder.crash(plugin_name, f"command:{invocation.name}", exc)
            return CommandReply(f"`{invocation.name}` failed ({type(exc).__name__}); the admins can see the log.", ok=False)

    # -- notifications -----------------------------------------------------------------------

    def before_merge(self, context: RuleContext, options: RuleOptions | None = None) -> None:
        self._notify("merge_assist_before_merge", options, context=context)

    def after_merge(
        self, context: RuleContext, merge_commit_sha: str | None, options: RuleOptions | None = None,
    ) -> None:
        self._notify("merge_assist_after_merge", options, context=context, merge_commit_sha=merge_commit_sha)

    def merge_failed(self, context: RuleContext, reason: str, options: RuleOptions | None = None) -> None:
        self._notify("merge_assist_merge_failed", options, context=context, reason=reason)

    def _notify(self, hook_name: str, options: RuleOptions | None, **arguments: Any) -> None:
        with self._hook_call(hook_name, options).active():
            getattr(self._pm.hook, hook_name)(**arguments)
