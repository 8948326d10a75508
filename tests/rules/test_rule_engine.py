"""Engine behaviour across plugins: crash isolation, on_error policy, metrics and commands."""

from __future__ import annotations

import logging
import types

from merge_assist.rules.commands import CommandInvocation, CommandRefused, CommandReply
from merge_assist.rules.hookspecs import AuthDecision, RuleDescription, hookimpl
from merge_assist.rules.model import Approvals, Outcome, Priority, Verdict
from tests.helpers import ALICE, FakeServices, RaisesEverywhere, auth_request

def exploding() -> RaisesEverywhere:
    return RaisesEverywhere("exploding", describes=True)


def test_a_plugin_raising_in_every_hook_does_not_stop_other_rules(make_engine, make_context, metrics, caplog):
    engine = make_engine(exploding())
    caplog.set_level(logging.ERROR, logger="merge_assist.rules")
    ready = make_context()

    decision = engine.check_merge(ready)
    assert decision.outcome is Outcome.PASS  # third-party crash: ignored by default
    assert Verdict.passed("exploding", "crashed, ignored: RuntimeError") in decision.verdicts
    assert engine.check_enqueue(ready).outcome is Outcome.PASS
    assert engine.check_merge(make_context(mr={"draft": True})).outcome is Outcome.REFUSE  # others still decide
    assert engine.adjust_priority(ready, Priority.HIGH) is Priority.HIGH
    assert engine.authorize(auth_request()).allowed
    assert "merge" in engine.commands()
    engine.before_merge(ready)
    engine.after_merge(ready, "c0ffee")
    engine.merge_failed(ready, "nope")

    for hook in ("check_merge", "adjust_priority", "authorize", "register_commands", "after_merge", "merge_failed"):
        assert metrics.count("plugin_error", "exploding", f"merge_assist_{hook}") >= 1, hook
    assert metrics.count("plugin_error", "exploding", "merge_assist_check_merge") == 2
    assert metrics.count("hook_duration", "merge_assist_check_merge") >= 2
    assert any("'exploding'" in record.getMessage() and record.exc_info for record in caplog.records)


def test_on_error_hold_turns_a_crash_into_wait(make_engine, make_context):
    engine = make_engine(exploding())
    decision = engine.check_merge(make_context(), {"exploding": {"on_error": "hold"}})
    assert decision.outcome is Outcome.WAIT
    assert decision.blocking == (Verdict.wait("exploding", "rule exploding failed: RuntimeError"),)


def crashing_builtin() -> types.ModuleType:
    """A module registered like the built-ins, whose checks and authorization raise."""
    module = types.ModuleType("merge_assist.plugins.flaky")
    module.merge_assist_describe_rule = hookimpl(lambda: RuleDescription("flaky", "Crashes."))
    module.merge_assist_check_merge = hookimpl(lambda context: 1 / 0)
    module.merge_assist_authorize = hookimpl(lambda request: 1 / 0)
    return module


def test_a_crashing_builtin_holds_the_lane_by_default(make_engine, make_context):
    from merge_assist.plugins import BUILTIN_PLUGINS

    engine = make_engine(builtins=BUILTIN_PLUGINS + (crashing_builtin(),))
    decision = engine.check_merge(make_context())
    assert decision.blocking == (Verdict.wait("flaky", "rule flaky failed: ZeroDivisionError"),)
    ignored = engine.check_merge(make_context(), {"flaky": {"on_error": "ignore"}})
    assert ignored.outcome is Outcome.PASS


def test_a_crashing_builtin_authorization_denies(make_engine):
    from merge_assist.plugins import BUILTIN_PLUGINS

    engine = make_engine(builtins=BUILTIN_PLUGINS + (crashing_builtin(),))
    decision = engine.authorize(auth_request())
    assert decision == AuthDecision(False, "authorization check flaky failed", "flaky")


def test_a_wrong_return_type_counts_as_a_crash(make_engine, make_context, metrics):
    plugin = types.SimpleNamespace(
        MERGE_ASSIST_NAME="sloppy", merge_assist_check_merge=hookimpl(lambda context: "looks fine"),
    )
    decision = make_engine(plugin).check_merge(make_context())
    assert Verdict.passed("sloppy", "crashed, ignored: TypeError") in decision.verdicts
    assert metrics.count("plugin_error", "sloppy", "merge_assist_check_merge") == 1


def test_disabled_builtin_rule_is_skipped(engine, make_context):
    not_approved = make_context(approvals=Approvals(2, 2))
    assert engine.check_merge(not_approved).outcome is Outcome.REFUSE
    decision = engine.check_merge(not_approved, {"approvals": {"enabled": False}})
    assert decision.outcome is Outcome.PASS
    assert "approvals" not in {verdict.rule for verdict in decision.verdicts}


def invocation(name: str, *args: str, services=None) -> CommandInvocation:
    return CommandInvocation(name, args, ALICE, 7, 42, None, services or FakeServices())


def test_run_command_answers_unknown_commands_and_handler_crashes(engine, make_engine, metrics):
    assert engine.run_command(invocation("merge", "-p", "high")) == CommandReply("enqueue high")
    unknown = engine.run_command(invocation("merg"))
    assert not unknown.ok and "/merge-assist help" in unknown.text

    class BrokenServices(FakeServices):
        def status(self):
            raise ConnectionError("db down")

    crashed = engine.run_command(invocation("status", services=BrokenServices()))
    assert not crashed.ok and "ConnectionError" in crashed.text
    assert metrics.count("plugin_error", "commands", "command:status") == 1


def test_run_command_turns_a_refusal_into_a_refused_reply(engine, metrics):
    class RefusingServices(FakeServices):
        def cancel(self):
            raise CommandRefused("!42 is being merged right now")

    reply = engine.run_command(invocation("cancel", services=RefusingServices()))
    assert reply == CommandReply("!42 is being merged right now", ok=False)
    assert metrics.count("plugin_error", "commands", "command:cancel") == 0
