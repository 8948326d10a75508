"""End to end: comments on MRs in the simulator, over real HTTP, end in merges in real git."""

from __future__ import annotations

from gitlab_sim import PipelinePlan
from merge_assist.rules.model import EntryState, LaneKey
from tests.e2e.harness import PIPELINE_SECONDS, Bot, World, finish_pipelines
from tests.helpers import wait_for

def test_developer_command_merges_the_mr(bot: Bot, world: World) -> None:
    iid = world.mr("feature-a")
    note_id = world.comment(iid, world.dev, "/merge-assist merge")
    entry = bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    assert entry.requested_by == "alice"
    finish_pipelines(world)
    merged = bot.wait_state(world, iid, EntryState.MERGED)
    mr = world.sim.merge_request(world.project, iid)
    assert mr.state == "merged"
    assert merged.tested_sha == mr.sha
    main_head = world.sim.branch_head(world.project, "main")
    assert world.sim.repo(world.project).is_ancestor(mr.sha, main_head)
    wait_for(lambda: any("Merged into `main`" in n for n in world.notes(iid)), message="merged comment")
    with world.sim.state.lock:
        emoji = [a.name for a in world.sim.state.notes[note_id].award_emoji]
    assert "eyes" in emoji
    actions = {(a.action, a.outcome) for a in bot.store.audit.entries(target=f"{world.project.id}!{iid}")}
    assert {("command:merge", "ok"), ("transition", "merging"), ("transition", "merged")} <= actions


def test_reporter_is_refused_and_audited(bot: Bot, world: World) -> None:
    iid = world.mr("feature-r", author=world.reporter)
    world.comment(iid, world.reporter, "/merge-assist merge")
    wait_for(lambda: any("may not run `merge`" in n for n in world.notes(iid)), message="refusal comment")
    assert bot.entry(iid, world.project.id) is None
    refusals = [a for a in bot.store.audit.entries(target=f"{world.project.id}!{iid}") if a.outcome == "refused"]
    assert refusals and refusals[0].actor == "rita"
    finish_pipelines(world)
    assert world.state(iid) == "opened"


def test_three_mrs_merge_in_priority_order(bot: Bot, world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan(duration=PIPELINE_SECONDS))
    bot.store.queue.set_lane_paused(LaneKey(world.project.id, "main"), True)
    bot.store.users.grant(bot.store.users.ensure_gitlab_user("bob", world.maintainer.id).id, "priority_manager")
    low = world.mr("low")
    normal = world.mr("normal")
    urgent = world.mr("urgent")
    world.comment(low, world.dev, "/merge-assist merge --priority low")
    bot.wait_state(world, low, EntryState.WAITING_PIPELINE)
    world.comment(normal, world.dev, "/merge-assist merge")
    world.comment(urgent, world.maintainer, "/merge-assist merge --priority urgent")
    wait_for(lambda: len(bot.store.queue.lane_entries(LaneKey(world.project.id, "main"))) == 3, message="3 queued")
    finish_pipelines(world)
    bot.store.queue.set_lane_paused(LaneKey(world.project.id, "main"), False)
    for iid in (low, normal, urgent):
        bot.wait_state(world, iid, EntryState.MERGED)
    merge_commits = {world.sim.merge_request(world.project, iid).merge_commit_sha: iid for iid in (low, normal, urgent)}
    history = world.sim.repo(world.project).out("log", "--first-parent", "--format=%H", "main").split()
    assert [merge_commits[sha] for sha in reversed(history) if sha in merge_commits] == [urgent, normal, low]


def test_two_lanes_progress_independently(bot: Bot, world: World) -> None:
    world.sim.commit(world.project, "release", {"VERSION": "1\n"}, "Start release", world.maintainer)
    world.sim.protect_branch(world.project, "release", merge_access_level=30)
    world.sim.set_pipeline_plan(lambda request: PipelinePlan(
        outcome="never_finish" if request.ref == "slow" else "pass", duration=PIPELINE_SECONDS))
    slow = world.mr("slow", target="main")
    fast = world.mr("fast", target="release")
    world.comment(slow, world.dev, "/merge-assist merge")
    world.comment(fast, world.dev, "/merge-assist merge")
    bot.wait_state(world, slow, EntryState.WAITING_PIPELINE)
    bot.wait_state(world, fast, EntryState.WAITING_PIPELINE)
    finish_pipelines(world)
    bot.wait_state(world, fast, EntryState.MERGED)
    assert bot.entry(slow, world.project.id).state is EntryState.WAITING_PIPELINE
    pipeline = world.pipelines_of(slow)[-1]
    world.sim.finish_pipeline(pipeline.id, "success")
    bot.wait_state(world, slow, EntryState.MERGED)


def test_push_during_pipeline_wait_merges_the_new_sha(bot: Bot, world: World) -> None:
    iid = world.mr("moving")
    world.comment(iid, world.dev, "/merge-assist merge")
    first = bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    new_sha = world.sim.push_behind_bots_back(world.project, "moving", {"moving.txt": "changed\n"},
                                              "Change behind the bot's back", world.dev)
    assert first.tested_sha != new_sha
    old_pipeline = next(p for p in world.pipelines_of(iid) if p.sha == first.tested_sha)
    world.sim.finish_pipeline(old_pipeline.id, "success")
    wait_for(lambda: bot.entry(iid, world.project.id).tested_sha == new_sha, message="re-validation of the new sha")
    assert world.state(iid) == "opened"
    finish_pipelines(world)
    merged = bot.wait_state(world, iid, EntryState.MERGED)
    assert merged.tested_sha == new_sha
    assert world.sim.merge_request(world.project, iid).sha == new_sha


def test_failed_pipeline_fails_with_a_comment(bot: Bot, world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan(outcome="fail", fail_when="early", duration=PIPELINE_SECONDS))
    iid = world.mr("broken")
    world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    finish_pipelines(world)
    failed = bot.wait_state(world, iid, EntryState.FAILED)
    assert "pipeline" in failed.reason.lower()
    wait_for(lambda: any("could not merge" in n and "retry" in n for n in world.notes(iid)), message="failure note")
    assert world.state(iid) == "opened"


def test_duplicate_deliveries_act_once(bot: Bot, world: World) -> None:
    iid = world.mr("dupe")
    note_id = world.comment(iid, world.dev, "/merge-assist merge")
    bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.sim.wait_for_deliveries()
    note_delivery = next(d for d in world.sim.deliveries() if d.header_event == "Note Hook")
    world.sim.resend_delivery(note_delivery.id)
    world.sim.edit_note(world.project, iid, note_id, world.dev, "/merge-assist   MERGE")
    world.sim.wait_for_deliveries()
    finish_pipelines(world)
    bot.wait_state(world, iid, EntryState.MERGED)
    assert len(bot.entries(iid, world.project.id)) == 1
    commands = [a for a in bot.store.audit.entries(target=f"{world.project.id}!{iid}") if a.action == "command:merge" and a.outcome == "ok"]
    assert len(commands) == 1


def test_a_failed_job_fails_the_entry_before_its_pipeline_ends(bot: Bot, world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan(outcome="fail", fail_when="early", duration=PIPELINE_SECONDS))
    iid = world.mr("fails-early")
    world.comment(iid, world.dev, "/merge-assist merge")
    entry = bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    world.sim.clock.advance(PIPELINE_SECONDS * 0.6)
    failed = bot.wait_state(world, iid, EntryState.FAILED)
    assert "job `lint` failed" in failed.reason
    pipeline = next(p for p in world.pipelines_of(iid) if p.sha == entry.tested_sha)
    assert pipeline.status == "running"
    wait_for(lambda: any("job `lint` failed" in n for n in world.notes(iid)), message="early failure note")
