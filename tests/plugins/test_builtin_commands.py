"""Built-in commands and authorization."""

from __future__ import annotations

import pytest

from merge_assist.rules.commands import CommandInvocation
from merge_assist.rules.hookspecs import AuthRequest
from merge_assist.rules.model import Actor, Priority
from tests.helpers import ALICE, FakeServices

UNLINKED_SLACK = Actor(gitlab_user_id=None, username="bob@slack", channel="slack")
UNLINKED_API = Actor(gitlab_user_id=None, username="script", channel="api")


@pytest.mark.parametrize("name, args, call", [
    ("merge", (), ("enqueue", "normal")),
    ("merge", ("--priority", "high"), ("enqueue", "high")),
    ("merge", ("--priority=urgent",), ("enqueue", "urgent")),
    ("merge", ("-p", "LOW"), ("enqueue", "low")),
    ("cancel", (), ("cancel",)),
    ("priority", ("urgent",), ("set_priority", "urgent")),
    ("retry", (), ("retry",)),
    ("status", (), ("status",)),
    ("help", (), ("help",)),
])
def test_builtin_command_handlers_call_services(engine, name, args, call):
    services = FakeServices()
    reply = engine.run_command(CommandInvocation(name, args, ALICE, 7, 42, None, services))
    assert reply.ok and services.calls == [call]


@pytest.mark.parametrize("name, args, problem", [
    ("merge", ("--priority", "asap"), "unknown priority 'asap'"),
    ("merge", ("now",), "unexpected arguments: now"),
    ("priority", (), "give exactly one priority"),
    ("cancel", ("please",), "takes no arguments"),
])
def test_bad_arguments_answer_with_usage_and_call_nothing(engine, name, args, problem):
    services = FakeServices()
    reply = engine.run_command(CommandInvocation(name, args, ALICE, 7, 42, None, services))
    assert not reply.ok and problem in reply.text
    assert f"Usage: `/merge-assist {name}" in reply.text
    assert services.calls == []


@pytest.mark.parametrize("name, args, expected", [
    ("merge", ("--priority", "urgent"), Priority.URGENT),
    ("merge", (), Priority.NORMAL),
    ("merge", ("--priority", "asap"), None),
    ("priority", ("high",), Priority.HIGH),
    ("status", (), None),
])
def test_requested_priority_is_parsed_for_authorization(engine, name, args, expected):
    parse = engine.commands()[name].requested_priority
    assert (parse(args) if parse else None) == expected


def test_every_builtin_command_has_help_with_examples(engine):
    for name, spec in engine.commands().items():
        assert spec.help.usage.startswith(f"/merge-assist {name}")
        assert spec.help.who_can_use and spec.help.examples
    assert [name for name, spec in engine.commands().items() if not spec.mutates] == ["status", "help"]


def request(command="merge", actor=ALICE, access=30, required=30, roles=(), priority=None, mutates=True):
    return AuthRequest(command, actor, 7, 42, "main", access, required, frozenset(roles), priority, mutates)


@pytest.mark.parametrize("auth_request, allowed, reason", [
    (request(), True, ""),
    (request(access=20), False, "needs Developer access to merge into `main`; you have Reporter"),
    (request(access=30, required=40), False, "needs Maintainer access"),
    (request("cancel", access=40, required=40), True, ""),
    (request("retry", access=0), False, "you have no access"),
    (request(priority=Priority.HIGH), False, "priority above normal needs"),
    (request(priority=Priority.HIGH, roles=("priority_manager",)), True, ""),
    (request("priority", priority=Priority.URGENT, roles=("project_owner",)), True, ""),
    (request("priority", priority=Priority.URGENT, roles=("viewer",)), False, "priority above normal"),
    (request("priority", priority=Priority.LOW), True, ""),
    (request(priority=Priority.URGENT, roles=("admin",), access=10), False, "needs Developer access"),
    (request("status", access=10, mutates=False), True, ""),
    (request("help", access=0, mutates=False), False, "at least Guest"),
    (request("status", actor=UNLINKED_SLACK, access=0, mutates=False), True, ""),
    (request("merge", actor=UNLINKED_SLACK, access=0), False, "link your Slack identity"),
    (request("status", actor=UNLINKED_API, access=0, mutates=False), False, "at least Guest"),
])
def test_builtin_authorization(engine, auth_request, allowed, reason):
    decision = engine.authorize(auth_request)
    assert decision.allowed is allowed
    assert reason in decision.reason
    assert decision.plugin == "authorization"
