"""One test per hook specification (named after it), plus a guard that keeps it that way."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from merge_assist.rules import hookspecs
from merge_assist.rules.commands import CommandInvocation, CommandReply, CommandSpec
from merge_assist.rules.hookspecs import AuthDecision, RuleDescription, hookimpl
from merge_assist.plugins import draft
from merge_assist.rules.model import CommandHelp, Outcome, Priority, Verdict
from tests.helpers import auth_request

def hook_names() -> list[str]:
    return [
        name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "merge_assist_spec")
    ]


def test_every_hook_has_a_docstring_and_a_test_named_after_it():
    names = hook_names()
    assert len(names) == 9
    test_names = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        test_names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    missing_docs = [name for name in names if len((getattr(hookspecs, name).__doc__ or "").strip()) < 40]
    missing_tests = [name for name in names if f"test_{name}" not in test_names]
    assert missing_docs == [] and missing_tests == []


def test_every_hook_is_typed():
    for name in hook_names():
        signature = inspect.signature(getattr(hookspecs, name))
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


class Described:
    MERGE_ASSIST_NAME = "described"

    @hookimpl
    def merge_assist_describe_rule(self):
        return RuleDescription("described", "A rule that describes itself.", defaults={"level": 3})


def test_merge_assist_describe_rule(make_engine):
    engine = make_engine(Described())
    names = [description.name for description in engine.describe_rules()]
    assert names[0] == "described" and "approvals" in names  # installed plugins are asked first
    assert engine.default_options()["described"] == {"enabled": True, "on_error": "ignore", "level": 3}
    assert engine.default_options()["approvals"]["on_error"] == "hold"


class SeesOptions:
    MERGE_ASSIST_NAME = "sees_options"

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.seen: list[dict] = []

    @hookimpl
    def merge_assist_describe_rule(self):
        return RuleDescription("sees_options", "Reports what it saw.", defaults={"level": 1})

    def _answer(self, context):
        self.seen.append(dict(context.options))
        return Verdict(rule="anything", outcome=self.outcome, reason=f"level {context.options['level']}")

    @hookimpl
    def merge_assist_check_enqueue(self, context):
        return self._answer(context)

    @hookimpl
    def merge_assist_check_merge(self, context):
        return self._answer(context)


def test_merge_assist_check_enqueue(make_engine, make_context):
    plugin = SeesOptions(Outcome.REFUSE)
    engine = make_engine(plugin)
    decision = engine.check_enqueue(make_context(), {"sees_options": {"level": 5}})
    assert decision.outcome is Outcome.REFUSE
    # The verdict carries the rule's own name whatever the plugin wrote, and its options.
    assert decision.blocking == (Verdict.refuse("sees_options", "level 5"),)
    assert plugin.seen[0]["level"] == 5
    # Every built-in with an enqueue check answered too.
    assert {"mr_state", "draft", "approvals"} <= {verdict.rule for verdict in decision.verdicts}


def test_merge_assist_check_merge(make_engine, make_context):
    plugin = SeesOptions(Outcome.WAIT)
    engine = make_engine(plugin)
    assert engine.check_merge(make_context()).outcome is Outcome.WAIT
    disabled = engine.check_merge(make_context(), {"sees_options": {"enabled": False}})
    assert disabled.outcome is Outcome.PASS
    assert len(plugin.seen) == 1  # a disabled rule is not asked at all
    assert "pipeline" in {verdict.rule for verdict in disabled.verdicts}


class Bumps:
    MERGE_ASSIST_NAME = "bumps"

    @hookimpl
    def merge_assist_adjust_priority(self, context, requested):
        return Priority.HIGH if "hotfix" in context.merge_request.labels else None


def test_merge_assist_adjust_priority(make_engine, make_context):
    engine = make_engine(Bumps())
    assert engine.adjust_priority(make_context(), Priority.LOW) is Priority.LOW
    assert engine.adjust_priority(make_context(mr={"labels": ("hotfix",)}), Priority.LOW) is Priority.HIGH
    both = make_context(mr={"labels": ("hotfix", "priority::urgent")})
    assert engine.adjust_priority(both, Priority.NORMAL) is Priority.URGENT  # the max wins


class DeniesFridays:
    MERGE_ASSIST_NAME = "no_fridays"

    def __init__(self, deny: bool) -> None:
        self.deny = deny

    @hookimpl
    def merge_assist_authorize(self, request):
        return AuthDecision.deny("not on Fridays") if self.deny else None


def test_merge_assist_authorize(make_engine):
    assert make_engine(DeniesFridays(False)).authorize(auth_request()).allowed
    denied = make_engine(DeniesFridays(True)).authorize(auth_request())
    assert denied == AuthDecision(False, "not on Fridays", "no_fridays")
    nobody_allows = make_engine(builtins=(draft,)).authorize(auth_request())
    assert not nobody_allows.allowed and "merge" in nobody_allows.reason


class TicketCommand:
    MERGE_ASSIST_NAME = "ticket_cmd"

    @hookimpl
    def merge_assist_register_commands(self):
        def replace_status(invocation: CommandInvocation) -> CommandReply:
            return CommandReply("custom status")

        help_ = CommandHelp("status", "Custom status.", "/merge-assist status", "everybody")
        return [CommandSpec(help_, replace_status, mutates=False)]


def test_merge_assist_register_commands(make_engine):
    builtin_only = make_engine().commands()
    assert list(builtin_only) == ["merge", "cancel", "priority", "retry", "status", "help"]
    overridden = make_engine(TicketCommand()).commands()
    assert overridden["status"].help.summary == "Custom status."  # later registration wins
    assert overridden["merge"] is not None


class Recorder:
    MERGE_ASSIST_NAME = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def merge_assist_before_merge(self, context):
        self.events.append(("before", context.merge_request.iid))

    @hookimpl
    def merge_assist_after_merge(self, context, merge_commit_sha):
        self.events.append(("after", merge_commit_sha))

    @hookimpl
    def merge_assist_merge_failed(self, context, reason):
        self.events.append(("failed", reason))


def test_merge_assist_before_merge(make_engine, make_context):
    recorder = Recorder()
    make_engine(recorder).before_merge(make_context())
    assert recorder.events == [("before", 42)]


def test_merge_assist_after_merge(make_engine, make_context):
    recorder = Recorder()
    make_engine(recorder).after_merge(make_context(), "c0ffee")
    assert recorder.events == [("after", "c0ffee")]


def test_merge_assist_merge_failed(make_engine, make_context):
    recorder = Recorder()
    make_engine(recorder).merge_failed(make_context(), "pipeline 900 failed")
    assert recorder.events == [("failed", "pipeline 900 failed")]
