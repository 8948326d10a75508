"""A failure of the bot's own parts while a command runs is retried, not answered as a refusal."""

from __future__ import annotations

import pytest

from merge_assist.rules.commands import CommandInvocation, CommandSpec
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.errors import ServiceFailure
from merge_assist.rules.hookspecs import hookimpl
from merge_assist.rules.model import CommandHelp
from merge_assist.rules.plugins import build_plugin_manager
from tests.helpers import ALICE, FakeServices


class StoreGone:
    @hookimpl
    def merge_assist_register_commands(self) -> list[CommandSpec]:
        def handler(invocation: CommandInvocation) -> object:
            raise ServiceFailure("enqueue failed: OperationalError")

        return [CommandSpec(CommandHelp("flaky-db", "fails like a database restart", "/merge-assist flaky-db", "anyone"), handler)]  # type: ignore[arg-type]


class Buggy:
    @hookimpl
    def merge_assist_register_commands(self) -> list[CommandSpec]:
        def handler(invocation: CommandInvocation) -> object:
            raise KeyError("a plugin bug")

        return [CommandSpec(CommandHelp("buggy", "a plugin bug", "/merge-assist buggy", "anyone"), handler)]  # type: ignore[arg-type]


def invocation(name: str) -> CommandInvocation:
    return CommandInvocation(name=name, args=(), actor=ALICE, project_id=1, mr_iid=2, note_id=None,
                             services=FakeServices())


def test_a_service_failure_propagates_so_the_event_is_retried() -> None:
    engine = RuleEngine(build_plugin_manager((), extra=(StoreGone(),)))
    with pytest.raises(ServiceFailure):
        engine.run_command(invocation("flaky-db"))


def test_a_plugin_bug_is_still_answered_and_isolated() -> None:
    engine = RuleEngine(build_plugin_manager((), extra=(Buggy(),)))
    reply = engine.run_command(invocation("buggy"))
    assert not reply.ok and "KeyError" in reply.text
