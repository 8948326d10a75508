"""The rule engine: asks every plugin on its own and combines the answers.

Why each hook implementation is called individually instead of through `pm.hook.<name>()`:
pluggy stops at the first exception, so one broken plugin would hide every other rule's
verdict. Here a plugin that raises is logged (logger `merge_assist.rules`, with the plugin's
name), counted in `merge_assist_plugin_errors_total{plugin,hook}`, and turned into a verdict
according to its rule's `on_error` option:

- `hold` (default for built-in rules): the crash counts as WAIT "rule <name> failed: <Exc>".
  Built-ins are the safety rules (pipeline, approvals, ...): merging without them is worse
  than holding a lane until someone looks.
- `ignore` (default for third-party plugins): the crash counts as PASS "crashed, ignored:
  <Exc>", visible in status and metrics, so that one broken add-on cannot stop every lane.

The same policy applies to `merge_assist_authorize` (hold = deny). Crashes in priority,
describe, command and notification hooks are logged and counted, and the answer skipped.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

import pluggy

from merge_assist.rules.commands import CommandInvocation, CommandRefused, CommandReply, CommandSpec
from merge_assist.rules.hookspecs import AuthDecision, AuthRequest, RuleDescription
from merge_assist.rules.metrics import METRICS, Metrics
from merge_assist.rules.model import Decision, Priority, RuleContext, Verdict

log = logging.getLogger("merge_assist.rules")

RuleOptions = Mapping[str, Mapping[str, Any]]
"""Effective options by rule name, as in `rules.config.ConfigResult.effective`."""

ON_ERROR_HOLD = "hold"
ON_ERROR_IGNORE = "ignore"
ON_ERROR_CHOICES = (ON_ERROR_HOLD, ON_ERROR_IGNORE)
CONTROL_OPTIONS = ("enabled", "on_error")
"""Options every rule has, on top of the ones it describes."""


@dataclass(frozen=True)
class _Answer:
    plugin: str
    rule: str
    value: Any
    error: Exception | None
    on_error: str


class RuleEngine:
    """Runs the hooks of a plugin manager built by `rules.plugins.build_plugin_manager`."""

    def __init__(self, pm: pluggy.PluginManager, metrics: Metrics = METRICS) -> None:
        self._pm = pm
        self._metrics = metrics
        self._rule_of_plugin: dict[str, str] = {}
        self._descriptions: dict[str, RuleDescription] = {}
        # Plugins are fixed once the manager is built, so rules are described once, up front.
        self._descriptions = self._describe_plugins()
        self._command_table: dict[str, tuple[str, CommandSpec]] | None = None

    # -- rules and their options -------------------------------------------------------------

    def describe_rules(self) -> list[RuleDescription]:
        """Every registered rule's description, built-ins first."""
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
        descriptions: dict[str, RuleDescription] = {}
        for answer in self._call_each("merge_assist_describe_rule", lambda options: {}):
            if isinstance(answer.value, RuleDescription):
                descriptions[answer.value.name] = answer.value
                self._rule_of_plugin[answer.plugin] = answer.value.name
        return descriptions

    def _default_on_error(self, plugin_name: str) -> str:
        is_builtin = getattr(self._pm, "is_builtin", lambda name: False)
        return ON_ERROR_HOLD if is_builtin(plugin_name) else ON_ERROR_IGNORE

    def _options_for(self, plugin_name: str, rule: str, options: RuleOptions | None) -> dict[str, Any]:
        description = self._descriptions.get(rule)
        merged: dict[str, Any] = {"enabled": True, "on_error": self._default_on_error(plugin_name)}
        merged.update(description.defaults if description else {})
        merged.update((options or {}).get(rule, {}))
        return copy.deepcopy(merged)  # a rule changing its options must not change anyone else's

    # -- calling plugins one by one ----------------------------------------------------------

    def _call_each(
        self, hook_name: str, make_kwargs: Callable[[dict[str, Any]], dict[str, Any]],
        options: RuleOptions | None = None,
    ) -> Iterator[_Answer]:
        """Call each implementation of a hook in registration order (built-ins first), skipping
        rules disabled in `options`; exceptions become answers with `error` set."""
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                continue
            rule = self._rule_of_plugin.get(impl.plugin_name, impl.plugin_name)
            rule_options = self._options_for(impl.plugin_name, rule, options)
            if not rule_options.get("enabled", True):
                continue
            kwargs = make_kwargs(rule_options)
            started = time.perf_counter()
            try:
                value = impl.function(**{name: kwargs[name] for name in impl.argnames})
                error: Exception | None = None
            except Exception as exc:
                value, error = None, exc
                self._record_crash(impl.plugin_name, hook_name, exc)
            finally:
                self._metrics.hook_duration(hook_name, time.perf_counter() - started)
            yield _Answer(impl.plugin_name, rule, value, error, str(rule_options.get("on_error")))

    def _record_crash(self, plugin_name: str, hook_name: str, exc: Exception) -> None:
        self._metrics.plugin_error(plugin_name, hook_name)
        log.error(
            "plugin %r raised %s in %s: %s", plugin_name, type(exc).__name__, hook_name, exc,
            exc_info=exc, extra={"plugin": plugin_name, "hook": hook_name},
        )

    def _wrong_type(self, answer: _Answer, hook_name: str, expected: type) -> _Answer:
        exc = TypeError(f"{hook_name} returned {type(answer.value).__name__}, expected {expected.__name__}")
        self._record_crash(answer.plugin, hook_name, exc)
        return replace(answer, value=None, error=exc)

    # -- checks ------------------------------------------------------------------------------

    def check_enqueue(self, context: RuleContext, options: RuleOptions | None = None) -> Decision:
        """Ask every enabled rule whether the MR may enter the queue."""
        return self._check("merge_assist_check_enqueue", context, options)

    def check_merge(self, context: RuleContext, options: RuleOptions | None = None) -> Decision:
        """Ask every enabled rule whether the lane's head entry may merge now."""
        return self._check("merge_assist_check_merge", context, options)

    def _check(self, hook_name: str, context: RuleContext, options: RuleOptions | None) -> Decision:
        verdicts: list[Verdict] = []
        answers = self._call_each(hook_name, lambda opts: {"context": replace(context, options=opts)}, options)
        for answer in answers:
            if answer.error is None and answer.value is not None and not isinstance(answer.value, Verdict):
                answer = self._wrong_type(answer, hook_name, Verdict)
            if answer.error is not None:
                verdicts.append(self._crash_verdict(answer))
            elif answer.value is not None:
                # A plugin speaks for its own rule only; the name in status comes from here.
                verdicts.append(replace(answer.value, rule=answer.rule))
        return Decision(tuple(verdicts))

    @staticmethod
    def _crash_verdict(answer: _Answer) -> Verdict:
        exc_name = type(answer.error).__name__
        if answer.on_error == ON_ERROR_IGNORE:
            return Verdict.passed(answer.rule, f"crashed, ignored: {exc_name}")
        return Verdict.wait(answer.rule, f"rule {answer.rule} failed: {exc_name}")

    def adjust_priority(
        self, context: RuleContext, requested: Priority, options: RuleOptions | None = None,
    ) -> Priority:
        """The highest priority any plugin asks for, else `requested`."""
        wanted: list[Priority] = []
        make_kwargs = lambda opts: {"context": replace(context, options=opts), "requested": requested}
        for answer in self._call_each("merge_assist_adjust_priority", make_kwargs, options):
            if answer.error is None and answer.value is not None:
                try:
                    wanted.append(Priority(answer.value))
                except ValueError:
                    self._wrong_type(answer, "merge_assist_adjust_priority", Priority)
        return max(wanted) if wanted else requested

    # -- authorization -----------------------------------------------------------------------

    def authorize(self, request: AuthRequest) -> AuthDecision:
        """Any deny wins; without any allow, access is denied."""
        allowed: AuthDecision | None = None
        for answer in self._call_each("merge_assist_authorize", lambda opts: {"request": request}):
            if answer.error is None and answer.value is not None and not isinstance(answer.value, AuthDecision):
                answer = self._wrong_type(answer, "merge_assist_authorize", AuthDecision)
            if answer.error is not None:
                if answer.on_error == ON_ERROR_IGNORE:
                    continue
                return AuthDecision(False, f"authorization check {answer.plugin} failed", answer.plugin)
            if answer.value is None:
                continue
            decision = replace(answer.value, plugin=answer.plugin)
            if not decision.allowed:
                return decision
            allowed = allowed or decision
        return allowed or AuthDecision(False, f"nobody may run `{request.command}` here", "")

    # -- commands ----------------------------------------------------------------------------

    def commands(self) -> dict[str, CommandSpec]:
        """Command table by name; a later registered plugin's command replaces an earlier one."""
        return {name: spec for name, (_, spec) in self._commands().items()}

    def _commands(self) -> dict[str, tuple[str, CommandSpec]]:
        if self._command_table is None:
            table: dict[str, tuple[str, CommandSpec]] = {}
            for answer in self._call_each("merge_assist_register_commands", lambda opts: {}):
                for spec in answer.value or ():
                    if isinstance(spec, CommandSpec):
                        table[spec.name] = (answer.plugin, spec)
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
        except Exception as exc:
            self._metrics.command(invocation.name, "crashed")
            self._record_crash(plugin_name, f"command:{invocation.name}", exc)
            return CommandReply(f"`{invocation.name}` failed ({type(exc).__name__}); the admins can see the log.", ok=False)

    # -- notifications -----------------------------------------------------------------------

    def before_merge(self, context: RuleContext, options: RuleOptions | None = None) -> None:
        self._notify("merge_assist_before_merge", context, options)

    def after_merge(
        self, context: RuleContext, merge_commit_sha: str | None, options: RuleOptions | None = None,
    ) -> None:
        self._notify("merge_assist_after_merge", context, options, merge_commit_sha=merge_commit_sha)

    def merge_failed(self, context: RuleContext, reason: str, options: RuleOptions | None = None) -> None:
        self._notify("merge_assist_merge_failed", context, options, reason=reason)

    def _notify(self, hook_name: str, context: RuleContext, options: RuleOptions | None, **extra: Any) -> None:
        make_kwargs = lambda opts: {"context": replace(context, options=opts), **extra}
        for _ in self._call_each(hook_name, make_kwargs, options):
            pass  # crashes are already logged and counted; nothing else to do
