"""The other commands end to end (embedded mode): status, help, cancel, priority, retry."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gitlab_sim import PipelinePlan, Simulator
from merge_assist.rules.model import EntryState, LaneKey, Priority
from gitlab_sim.state import User
from tests.e2e.harness import Bot, World, start_embedded
from tests.helpers import wait_for


@pytest.fixture
def bot(sim: Simulator, world: World, tmp_path: Path) -> Iterator[Bot]:
    running = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}")
    yield running
    running.stop()


def reply(world: World, iid: int, containing: str) -> str:
    return wait_for(lambda: next((n for n in world.notes(iid) if containing in n), None),  # type: ignore[return-value]
                    message=f"a reply containing {containing!r}")


def test_status_lists_every_rule_and_the_position(bot: Bot, world: World) -> None:
    iid = world.mr("status", draft=True)
    world.comment(iid, world.dev, "/merge-assist status")
    text = reply(world, iid, "draft")
    pm = bot.server.runtime.engine._pm
    checking = [pm.get_name(impl.plugin) for impl in pm.hook.merge_assist_check_merge.get_hookimpls()]
    assert len(checking) >= 10
    assert all(f"`{rule}`" in text for rule in checking)
    world.sim.set_draft(world.project, iid, False)
    world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.comment(iid, world.dev, "/merge-assist status")
    assert "1" in reply(world, iid, "Queue state: `waiting_pipeline`")


def test_help_is_generated_from_the_registered_commands(bot: Bot, world: World) -> None:
    iid = world.mr("help")
    world.comment(iid, world.reporter, "/merge-assist help")
    text = reply(world, iid, "/merge-assist merge")
    for name, spec in bot.server.runtime.engine.commands().items():
        assert spec.help.usage in text, name


def test_cancel_removes_the_mr_from_the_queue(bot: Bot, world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan(outcome="never_finish"))
    iid = world.mr("cancel-me")
    world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.comment(iid, world.dev, "/merge-assist cancel")
    cancelled = bot.wait_state(world, iid, EntryState.CANCELLED)
    assert "alice" in cancelled.reason
    reply(world, iid, "Removed !")


def test_priority_needs_a_role_and_reorders_the_lane(bot: Bot, world: World) -> None:
    lane = LaneKey(world.project.id, "main")
    bot.store.queue.set_lane_paused(lane, True)
    first, second = world.mr("first"), world.mr("second")
    world.comment(first, world.dev, "/merge-assist merge")
    world.comment(second, world.dev, "/merge-assist merge")
    wait_for(lambda: len(bot.store.queue.lane_entries(lane)) == 2, message="two queued")
    world.comment(second, world.dev, "/merge-assist priority urgent")
    reply(world, second, "may not run `priority`")
    bot.store.users.grant(bot.store.users.ensure_gitlab_user("bob", world.maintainer.id).id, "priority_manager",
                          project_id=world.project.id)
    world.comment(second, world.maintainer, "/merge-assist priority urgent")
    reply(world, second, "Priority set to urgent")
    assert [e.mr_iid for e in bot.store.queue.lane_entries(lane)] == [second, first]


def test_a_priority_label_does_not_let_anyone_jump_the_queue(bot: Bot, world: World) -> None:
    iid = world.mr("labelled", labels=["priority::urgent"])
    world.comment(iid, world.dev, "/merge-assist merge")
    entry = bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    assert entry.priority is Priority.NORMAL


def test_retry_after_a_fixed_pipeline_merges(bot: Bot, world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan(outcome="flaky", flaky_failures=1, duration=600))
    iid = world.mr("flaky")
    world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.sim.clock.advance(700)
    bot.wait_state(world, iid, EntryState.FAILED)
    pipeline = world.pipelines_of(iid)[-1]
    world.sim.backend.runner.retry(pipeline)
    world.sim.clock.advance(700)
    world.comment(iid, world.dev, "/merge-assist retry")
    bot.wait_state(world, iid, EntryState.MERGED)
    assert world.state(iid) == "merged"
    entries = bot.entries(iid, world.project.id)
    assert [e.state for e in entries] == [EntryState.MERGED, EntryState.FAILED]


def test_retry_keeps_a_raised_priority_only_for_those_who_may_raise_it(bot: Bot, world: World) -> None:
    """Finding 9 of the hardening issue: `retry` used to queue again at the old, raised priority."""
    world.sim.set_pipeline_plan(PipelinePlan(outcome="fail", duration=600))
    bot.store.users.grant(bot.store.users.ensure_gitlab_user("bob", world.maintainer.id).id, "priority_manager",
                          project_id=world.project.id)
    iid = world.mr("urgent-then-failed")
    world.comment(iid, world.maintainer, "/merge-assist merge --priority urgent")
    assert bot.wait_state(world, iid, EntryState.WAITING_PIPELINE).priority is Priority.URGENT
    world.sim.clock.advance(700)
    bot.wait_state(world, iid, EntryState.FAILED)

    def retried_by(user: User) -> Priority:
        """The priority of the entry the retry queued, once that entry has ended (the pipeline still fails)."""
        known = {e.id for e in bot.entries(iid, world.project.id)}
        world.comment(iid, user, "/merge-assist retry")
        entry = wait_for(lambda: next((e for e in bot.entries(iid, world.project.id) if e.id not in known), None),
                         message=f"the entry {user.username}'s retry queued")
        world.sim.clock.advance(700)
        wait_for(lambda: bot.store.queue.get_entry(entry.id).state.is_final,  # type: ignore[union-attr]
                 message="the retried entry to end")
        return entry.priority  # type: ignore[no-any-return]

    assert retried_by(world.maintainer) is Priority.URGENT  # a priority manager keeps it
    assert retried_by(world.dev) is Priority.NORMAL  # anyone else queues at normal


def test_a_command_carried_out_again_after_a_crash_does_not_queue_the_mr_twice(bot: Bot, world: World) -> None:
    """A worker killed after running `merge` but before marking the comment done: the comment is
    delivered and run again; the MR must not get a second entry."""
    from merge_assist.rules.model import Actor

    iid = world.mr("again")
    note_id = world.comment(iid, world.dev, "/merge-assist merge")
    first = bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    commands = bot.server.runtime.commands  # type: ignore[union-attr]
    actor = Actor(world.dev.id, world.dev.username, "gitlab")
    again = commands.execute("merge", (), actor, world.project.id, iid, note_id, post_reply=False)
    assert "already" in again.text
    world.sim.clock.advance(700)
    bot.wait_state(world, iid, EntryState.MERGED)
    after = commands.execute("merge", (), actor, world.project.id, iid, note_id, post_reply=False)
    assert "already carried out" in after.text
    assert [e.id for e in bot.entries(iid, world.project.id)] == [first.id]
