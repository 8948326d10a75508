"""Help and status Markdown, generated from the registered commands and rules."""

from __future__ import annotations

from merge_assist.rules.commands import CommandReply, CommandSpec
from merge_assist.rules.help import render_help, render_status
from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import CommandHelp, Decision, Verdict


class Extra:
    MERGE_ASSIST_NAME = "extra"

    @hookimpl
    def merge_assist_describe_rule(self):
        return RuleDescription("extra_rule", "Checks | pipes survive.", option_help={"depth": "how deep"})

    @hookimpl
    def merge_assist_register_commands(self):
        help_ = CommandHelp("deploy", "Deploy it.", "/merge-assist deploy <env>", "Maintainers", ("/merge-assist deploy prod",))
        return [CommandSpec(help_, lambda invocation: CommandReply("ok"))]


def test_render_help_lists_every_command_and_rule(make_engine):
    engine = make_engine(Extra())
    text = render_help(engine)
    for name, spec in engine.commands().items():
        assert f"#### `{spec.help.usage}`" in text
        assert spec.help.who_can_use in text
        assert all(f"- `{example}`" in text for example in spec.help.examples)
    for rule in engine.describe_rules():
        assert f"| `{rule.name}` |" in text
    assert "/merge-assist deploy prod" in text
    assert "Checks \\| pipes survive." in text  # escaped inside the table
    assert "- `rules.extra_rule.depth`: how deep" in text
    assert "- `rules.freeze.timezone`:" in text


def test_render_help_has_no_rule_the_engine_does_not_know(make_engine):
    text = render_help(make_engine())
    assert "extra_rule" not in text and "deploy" not in text


def test_render_status_shows_every_verdict_and_the_position():
    decision = Decision((
        Verdict.passed("draft"),
        Verdict.wait("pipeline", "pipeline running"),
        Verdict.wait("freeze", "merge freeze until Monday | 09:00"),
    ))
    text = render_status(decision, position=2, lane_size=5)
    assert text.startswith("**Merge Assist status:** waiting, position 2 of 5 in the queue.")
    assert "Blocked by pipeline: pipeline running; freeze: merge freeze until Monday | 09:00." in text
    assert "| `draft` | ✅ pass |   |" in text
    assert "| `pipeline` | ⏳ wait | pipeline running |" in text
    assert "Monday \\| 09:00" in text


def test_render_status_when_ready_refused_or_not_queued():
    assert "ready to merge, position 1 in the queue." in render_status(Decision((Verdict.passed("draft"),)), 1, None)
    refused = render_status(Decision((Verdict.refuse("labels", "blocking label"),)), None, None)
    assert "refused, not queued." in refused and "| `labels` | ⛔ refuse | blocking label |" in refused
