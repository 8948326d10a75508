"""End to end: rules and plugins decide what the real bot does with merge requests in the
simulator (labels, freeze windows with an injected clock, the repo config file, the example
third-party plugin, and a plugin that crashes in every hook)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

from gitlab_sim import Simulator
from merge_assist.rules.model import EntryState, LaneKey
from tests.e2e.harness import Bot, World, finish_pipelines
from tests.e2e.rules_support import (
    SettableClock, commit_config, metric_samples, runtime_of, start_bot,
    wait_merge_event_handled, wait_note,
)
from tests.helpers import RaisesEverywhere, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
ACTIVE = {EntryState.QUEUED, EntryState.REBASING, EntryState.WAITING_PIPELINE, EntryState.MERGING}

BLOCKING_LABEL_CONFIG = 'rules:\n  labels: {blocking: ["do-not-merge"]}\n'
FREEZE_CONFIG = ('rules:\n  freeze: {windows: ["Friday 13:00 - Monday 09:00"], timezone: "Europe/Berlin"}\n')


def audit_for(bot: Bot, world: World, iid: int):  # type: ignore[no-untyped-def]
    return bot.store.audit.entries(target=f"{world.project.id}!{iid}")


@pytest.fixture
def stop_bots() -> Iterator[list[Bot]]:
    """Bots started by a test; stopped at teardown even when the test fails."""
    bots: list[Bot] = []
    yield bots
    for running in bots:
        running.stop()


# -- 1. labels --------------------------------------------------------------------------------

def test_blocking_label_refuses_the_merge_command(sim: Simulator, world: World, tmp_path: Path,
                                                  stop_bots: list[Bot]) -> None:
    commit_config(world, BLOCKING_LABEL_CONFIG)
    bot = start_bot(sim, world, tmp_path)
    stop_bots.append(bot)
    blocked = world.mr("blocked", labels=["do-not-merge"])
    control = world.mr("unlabelled")

    world.comment(blocked, world.dev, "/merge-assist merge")
    refusal = wait_note(world, blocked, "cannot queue", "`labels`")
    assert "do-not-merge" in refusal
    assert bot.entries(blocked, world.project.id) == []
    refused = [a for a in audit_for(bot, world, blocked) if a.outcome == "refused"]
    assert refused, "the refusal is not in the audit log"
    assert refused[0].actor == "alice" and "labels" in refused[0].detail and "do-not-merge" in refused[0].detail

    # The same configuration lets an MR without the label through.
    world.comment(control, world.dev, "/merge-assist merge")
    bot.wait_state(world, control, EntryState.WAITING_PIPELINE)
    finish_pipelines(world)
    bot.wait_state(world, control, EntryState.MERGED)
    assert world.state(blocked) == "opened"
    assert bot.entries(blocked, world.project.id) == []


# -- 2. freeze window with an injected clock --------------------------------------------------

def test_freeze_window_holds_the_queue_and_releases_it_at_its_end(
        sim: Simulator, world: World, tmp_path: Path, stop_bots: list[Bot]) -> None:
    commit_config(world, FREEZE_CONFIG)
    clock = SettableClock(datetime(2024, 6, 15, 12, 0, tzinfo=BERLIN))  # a Saturday
    bot = start_bot(sim, world, tmp_path, clock=clock, recheck_seconds=1.0)
    stop_bots.append(bot)
    first = world.mr("frozen-1")
    second = world.mr("frozen-2")

    world.comment(first, world.dev, "/merge-assist merge")
    bot.wait_state(world, first, EntryState.WAITING_PIPELINE)
    world.comment(second, world.dev, "/merge-assist merge")
    wait_for(lambda: bot.entry(second, world.project.id) is not None, message="!second queued")
    finish_pipelines(world)
    assert all(p.status == "success" for iid in (first, second) for p in world.pipelines_of(iid))

    # Only the freeze holds the head now: its pipeline passed.
    def held_by_freeze_only() -> bool:
        entry = bot.entry(first, world.project.id)
        return entry is not None and "freeze" in entry.reason and "pipeline" not in entry.reason

    wait_for(held_by_freeze_only, message="the head entry to wait for the freeze alone")
    reason = bot.entry(first, world.project.id).reason
    assert "Monday 2024-06-17 09:00" in reason, reason

    # Several slow re-checks (1 s) pass during the freeze: nothing merges, nothing is dropped.
    time.sleep(3.0)
    for iid in (first, second):
        entry = bot.entry(iid, world.project.id)
        assert entry is not None and entry.state in ACTIVE, entry
        assert world.state(iid) == "opened"
    assert len(bot.store.queue.lane_entries(LaneKey(world.project.id, "main"))) == 2
    assert not any("could not merge" in n for iid in (first, second) for n in world.notes(iid))

    # Still frozen one minute before the end.
    clock.set(datetime(2024, 6, 17, 8, 59, tzinfo=BERLIN))
    time.sleep(1.5)
    assert world.state(first) == "opened"

    # The window ends: the re-check timer (no webhook is sent) releases the lane in order.
    clock.set(datetime(2024, 6, 17, 9, 1, tzinfo=BERLIN))
    bot.wait_state(world, first, EntryState.MERGED, timeout=20)
    bot.wait_state(world, second, EntryState.MERGED, timeout=20)
    merged_at = {iid: world.sim.merge_request(world.project, iid).merge_commit_sha for iid in (first, second)}
    history = world.sim.repo(world.project).out("log", "--first-parent", "--format=%H", "main").split()
    assert [iid for sha in reversed(history) for iid, m in merged_at.items() if m == sha] == [first, second]


# -- 3. a broken .merge-assist.yml ------------------------------------------------------------

BROKEN_CONFIGS = [
    # Each also lifts the blocking label: were any part of it applied, the labelled MR would queue.
    pytest.param('rules:\n  labels: {blocking: []}\n  freeze: {windows: ["Caturday 25:00 - Monday 9am"]}\n',
                 "rules.freeze.windows[0]", "Caturday 25:00", id="bad-value"),
    pytest.param("rules:\n  labels: {blocking: []}\n  freez: {windows: []}\n", "rules.freez", "unknown rule",
                 id="unknown-rule"),
]


@pytest.mark.parametrize("broken, key, reason", BROKEN_CONFIGS)
def test_broken_repo_config_is_reported_and_the_last_valid_one_stays(
        sim: Simulator, world: World, tmp_path: Path, stop_bots: list[Bot], broken: str, key: str,
        reason: str) -> None:
    commit_config(world, BLOCKING_LABEL_CONFIG)
    bot = start_bot(sim, world, tmp_path)
    stop_bots.append(bot)

    # The broken file lands on the default branch through the queue itself.
    change = world.sim.create_merge_request(world.project, "break-config", author=world.dev,
                                            files={".merge-assist.yml": broken}).iid
    world.comment(change, world.dev, "/merge-assist merge")
    bot.wait_state(world, change, EntryState.WAITING_PIPELINE)
    finish_pipelines(world)
    bot.wait_state(world, change, EntryState.MERGED)
    assert world.sim.repo(world.project).out("show", "main:.merge-assist.yml") == broken.rstrip("\n")
    wait_merge_event_handled(bot, world, change)

    blocked = world.mr("still-blocked", labels=["do-not-merge"])
    world.comment(blocked, world.dev, "/merge-assist merge")
    error = wait_note(world, blocked, "Configuration error")
    assert "`.merge-assist.yml`" in error and f"`{key}`" in error and reason in error, error
    refusal = wait_note(world, blocked, "cannot queue", "`labels`")
    assert "do-not-merge" in refusal
    assert bot.entries(blocked, world.project.id) == []
    # Reported once for the broken commit, not on every later look at the configuration.
    world.comment(blocked, world.dev, "/merge-assist status")
    status = wait_note(world, blocked, "Merge Assist status")
    assert "Blocked by labels" in status and "do-not-merge" in status, status
    assert sum("Configuration error" in n for n in world.notes(blocked)) == 1


# -- 4. the example third-party plugin: tests/rules/test_example_plugin.py -------------------

# -- 5. a plugin that raises in every hook ----------------------------------------------------

def test_a_plugin_raising_everywhere_does_not_stop_merges(
        sim: Simulator, world: World, tmp_path: Path, stop_bots: list[Bot]) -> None:
    name = f"raises_everywhere_{uuid.uuid4().hex[:8]}"  # the metrics registry is process-wide
    bot = start_bot(sim, world, tmp_path, extra_plugins=(RaisesEverywhere(name),))
    stop_bots.append(bot)
    assert runtime_of(bot).engine._pm.get_plugin(name) is not None

    iid = world.mr("despite-crashes")
    world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    finish_pipelines(world)
    merged = bot.wait_state(world, iid, EntryState.MERGED)
    assert world.state(iid) == "merged"
    assert merged.tested_sha == world.sim.merge_request(world.project, iid).sha
    wait_note(world, iid, "Merged into `main`")

    def errors_by_hook() -> dict[str, float]:
        samples = metric_samples(f"{bot.url}/metrics", "merge_assist_plugin_errors_total")
        return {labels["hook"]: value for labels, value in samples if labels.get("plugin") == name}

    expected = {"merge_assist_describe_rule", "merge_assist_authorize", "merge_assist_check_enqueue",
                "merge_assist_check_merge", "merge_assist_adjust_priority", "merge_assist_register_commands",
                "merge_assist_before_merge", "merge_assist_after_merge"}
    wait_for(lambda: expected <= set(errors_by_hook()), message="plugin error counters for every hook that ran")
    counted = errors_by_hook()
    assert all(counted[hook] >= 1 for hook in expected), counted
    # Only hooks that really ran are counted: nothing failed, so merge_failed never fired.
    assert "merge_assist_merge_failed" not in counted, counted
