"""The example third-party plugin, installed for real and loaded through its entry point."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.rules.commands import CommandInvocation
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.help import render_help
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Actor, Outcome
from merge_assist.rules.plugins import build_plugin_manager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "merge_assist_example_plugin"
MODULE = "merge_assist_ticket_rule"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("wheel") is None,
    reason="building the example needs the `wheel` package next to setuptools<70.1",
)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install the example into a private folder and put it on sys.path."""
    work = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, work / "source")  # builds must not litter the repository
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop(MODULE, None)


@pytest.fixture
def engine_with_entry_points(installed_example) -> RuleEngine:
    return RuleEngine(build_plugin_manager(BUILTIN_PLUGINS), RecordingMetrics())


def test_example_plugin_is_loaded_through_its_entry_point(engine_with_entry_points):
    pm = engine_with_entry_points._pm
    assert pm.get_plugin("ticket").__name__ == MODULE
    assert not pm.is_builtin("ticket")
    assert "ticket_reference" in {rule.name for rule in engine_with_entry_points.describe_rules()}
    assert "/merge-assist ticket" in render_help(engine_with_entry_points)


def test_entry_points_are_skipped_when_asked(installed_example):
    pm = build_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False)
    assert pm.get_plugin("ticket") is None


def test_example_rule_takes_effect_with_its_options(engine_with_entry_points, make_context):
    engine = engine_with_entry_points
    without_ticket = make_context(mr={"title": "Add login"})
    refused = engine.check_enqueue(without_ticket)
    assert refused.outcome is Outcome.REFUSE
    assert [verdict.rule for verdict in refused.blocking] == ["ticket_reference"]
    with_ticket = engine.check_enqueue(make_context(mr={"title": "ABC-123 Add login"}))
    assert with_ticket.outcome is Outcome.PASS
    custom = engine.check_merge(without_ticket, {"ticket_reference": {"pattern": "login"}})
    assert custom.outcome is Outcome.PASS


def test_example_command_replies_with_the_ticket(engine_with_entry_points, make_context):
    mr = make_context(mr={"title": "Fix OPS-42: flaky login"}).merge_request
    invocation = CommandInvocation("ticket", (), Actor(1, "alice"), 7, 42, None, services=None, merge_request=mr)
    reply = engine_with_entry_points.run_command(invocation)
    assert reply.ok and reply.text == "Ticket: OPS-42"
    assert engine_with_entry_points.commands()["ticket"].mutates is False
