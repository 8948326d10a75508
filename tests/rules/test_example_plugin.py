"""The example third-party plugin (examples/merge_assist_example_plugin), installed for real as a
distribution and loaded through its `merge_assist` entry point: in the engine, and end to end
through the bot against the GitLab simulator. It imports only the public API (`merge_assist`)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from gitlab_sim import Simulator
from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.rules.commands import CommandInvocation
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.help import render_help
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Actor, EntryState, Outcome, RuleContext
from merge_assist.rules.plugins import build_plugin_manager
from tests.e2e.harness import finish_pipelines, make_world
from tests.e2e.rules_support import commit_config, runtime_of, start_bot, wait_note
from tests.helpers import REPO, FakeServices, wait_for

EXAMPLE = REPO / "examples" / "merge_assist_example_plugin"
MODULE = "merge_assist_ticket_rule"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("wheel") is None,
    reason="building the example needs the `wheel` package next to setuptools<70.1",
)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install the example (a distribution with an entry point) into a private folder on sys.path."""
    work = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, work / "source")  # builds must not litter the repository
    target = work / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"pip install of the example plugin failed:\n{result.stderr}"
    assert list(target.glob("merge_assist_ticket_rule-*.dist-info/entry_points.txt"))
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop(MODULE, None)
    importlib.invalidate_caches()


@pytest.fixture
def engine_with_entry_points(installed_example: Path) -> RuleEngine:
    return RuleEngine(build_plugin_manager(BUILTIN_PLUGINS), RecordingMetrics())


def test_example_plugin_imports_only_the_public_api() -> None:
    tree = ast.parse((EXAMPLE / f"{MODULE}.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {name for name in imported if name and name.startswith("merge_assist")} == {"merge_assist"}


def test_example_plugin_is_loaded_through_its_entry_point(engine_with_entry_points: RuleEngine) -> None:
    pm = engine_with_entry_points._pm
    assert pm.get_plugin("ticket").__name__ == MODULE
    assert not pm.is_builtin("ticket")
    assert "ticket_reference" in {rule.name for rule in engine_with_entry_points.describe_rules()}
    assert "/merge-assist ticket" in render_help(engine_with_entry_points)


def test_entry_points_are_skipped_when_asked(installed_example: Path) -> None:
    pm = build_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False)
    assert pm.get_plugin("ticket") is None


def test_example_rule_takes_effect_with_its_options(engine_with_entry_points: RuleEngine,
                                                    make_context: Callable[..., RuleContext]) -> None:
    engine = engine_with_entry_points
    without_ticket = make_context(mr={"title": "Add login"})
    refused = engine.check_enqueue(without_ticket)
    assert refused.outcome is Outcome.REFUSE
    assert [verdict.rule for verdict in refused.blocking] == ["ticket_reference"]
    with_ticket = engine.check_enqueue(make_context(mr={"title": "ABC-123 Add login"}))
    assert with_ticket.outcome is Outcome.PASS
    custom = engine.check_merge(without_ticket, {"ticket_reference": {"pattern": "login"}})
    assert custom.outcome is Outcome.PASS


def test_example_command_replies_with_the_ticket(engine_with_entry_points: RuleEngine,
                                                 make_context: Callable[..., RuleContext]) -> None:
    mr = make_context(mr={"title": "Fix OPS-42: flaky login"}).merge_request
    invocation = CommandInvocation("ticket", (), Actor(1, "alice"), 7, 42, None, FakeServices(), merge_request=mr)
    reply = engine_with_entry_points.run_command(invocation)
    assert reply.ok and reply.text == "Ticket: OPS-42"
    assert engine_with_entry_points.commands()["ticket"].mutates is False


def test_example_plugin_rule_and_command_work_end_to_end_through_the_bot(
        installed_example: Path, sim: Simulator, tmp_path: Path) -> None:
    world = make_world(sim)
    commit_config(world, 'rules:\n  ticket_reference: {pattern: "\\\\bJIRA-\\\\d+\\\\b"}\n')
    bot = start_bot(sim, world, tmp_path)
    try:
        assert runtime_of(bot).engine.commands().get("ticket") is not None

        # Its command answers on the MR.
        good = world.mr("login", title="JIRA-7 Add login")
        world.comment(good, world.reporter, "/merge-assist ticket")
        assert "Ticket: JIRA-7" in wait_note(world, good, "Ticket:")

        # Its rule refuses at enqueue, with the pattern from .merge-assist.yml.
        other = world.mr("logout", title="ABC-123 Add logout")
        world.comment(other, world.dev, "/merge-assist merge")
        refusal = wait_note(world, other, "cannot queue")
        assert "`ticket_reference`" in refusal and "references no ticket" in refusal
        assert bot.entries(other, world.project.id) == []

        # ... and at merge time: the ticket disappears from the title while the MR waits.
        world.comment(good, world.dev, "/merge-assist merge")
        bot.wait_state(world, good, EntryState.WAITING_PIPELINE)
        world.sim.update_merge_request(world.project, good, world.dev, title="Add login")
        failed = bot.wait_state(world, good, EntryState.FAILED)
        assert "ticket_reference" in failed.reason
        assert world.state(good) == "opened"

        # Put back, it passes the rule and merges.
        world.sim.update_merge_request(world.project, good, world.dev, title="JIRA-7 Add login")
        world.comment(good, world.dev, "/merge-assist retry")
        active = {EntryState.QUEUED, EntryState.REBASING, EntryState.WAITING_PIPELINE, EntryState.MERGING}
        wait_for(lambda: any(e.state in active for e in bot.entries(good, world.project.id)), message="requeued")
        finish_pipelines(world)
        wait_for(lambda: world.state(good) == "merged", message="!good merged")
    finally:
        bot.stop()
