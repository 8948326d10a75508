"""Tree-dependent CI: bad MRs and semantic conflicts fail for real; flaky draws; failure timing."""

from __future__ import annotations

from pathlib import Path

from gitlab_sim import PipelineRequest, Simulator
from gitlab_sim.sample import Team, make_team
from gitlab_sim.tree_ci import TreeCI, TreeVerdict

from .helpers import Receiver, git

DURATION = 100.0
START_FILES = {"README.md": "hello\n", "src/defs/old": "", "src/a.py": "call old\n"}


def team(sim: Simulator) -> Team:
    return make_team(sim, files=START_FILES)


def two_mrs_that_conflict_semantically(world: Team) -> None:
    """MR 1 renames ``old`` to ``new`` (and fixes its caller); MR 2 adds a call to ``old``."""
    sim, project = world.sim, world.project
    sim.create_merge_request(project, "rename", author=world.dev,
                             files={"src/defs/old": None, "src/defs/new": "", "src/a.py": "call new\n"})
    sim.create_merge_request(project, "caller", author=world.dev, files={"src/b.py": "x = 1\ncall old\n"})


def test_semantic_conflict_passes_alone_and_fails_together(sim: Simulator, tmp_path: Path) -> None:
    world = team(sim)
    ci = TreeCI(sim, duration=DURATION, fail_at=lambda _request: 0.5)
    sim.set_pipeline_plan(ci)
    two_mrs_that_conflict_semantically(world)
    sim.clock.advance(DURATION)
    assert [p.status for p in sim.pipelines(world.project)] == ["success", "success"]

    checkout = tmp_path / "car"
    git("clone", "--quiet", sim.clone_url(world.project, world.bot), str(checkout))
    git("fetch", "--quiet", "origin", "rename", "caller", cwd=checkout)
    git("merge", "--quiet", "--no-ff", "-m", "car: rename", "origin/rename", cwd=checkout)
    git("merge", "--quiet", "--no-ff", "-m", "car: caller", "origin/caller", cwd=checkout)
    car = git("rev-parse", "HEAD", cwd=checkout).stdout.strip()
    with Receiver() as receiver:
        sim.add_hook(world.project, receiver.url, events=["pipeline", "job"])
        git("push", "--quiet", "origin", "HEAD:refs/heads/merge-assist/car-1", cwd=checkout)
        sim.clock.advance(DURATION / 2)
        sim.wait_for_deliveries()
        failed_jobs = [r.body for r in receiver.events("Job Hook") if r.body["build_status"] == "failed"]
        assert [(j["ref"], j["sha"], j["build_name"]) for j in failed_jobs] == [
            ("merge-assist/car-1", car, "lint")]
        assert "failed" not in {r.body["object_attributes"]["status"] for r in receiver.events("Pipeline Hook")}
        sim.clock.advance(DURATION / 2)
        sim.wait_for_deliveries()
        last = receiver.events("Pipeline Hook")[-1].body["object_attributes"]
    assert (last["ref"], last["sha"], last["status"]) == ("merge-assist/car-1", car, "failed")
    assert ci.verdict("acme/app", car) == TreeVerdict(False, "src/b.py calls undefined old",
                                                      ("src/b.py calls undefined old",))
    assert ci.tree_passes("acme/app", "rename") and ci.tree_passes("acme/app", "caller")


def test_broken_marker_fails_wherever_it_goes_and_failures_report_within_the_range(sim: Simulator) -> None:
    world = team(sim)
    ci = TreeCI(sim, duration=DURATION, fail_at=(0.2, 1.0), seed=7)
    sim.set_pipeline_plan(ci)
    for index in range(12):
        sim.commit(world.project, f"bad-{index}", {f"src/c{index}.py": f"v = {index}\nBROKEN\n"}, author=world.dev)
    sim.clock.advance(DURATION)
    pipelines = sim.pipelines(world.project)
    assert {p.status for p in pipelines} == {"failed"}
    reported = [min(j.finished_at for j in p.jobs if j.status == "failed") - p.started_at
                for p in pipelines]
    assert all(0.2 * DURATION <= r <= DURATION for r in reported)
    assert len({round(r, 3) for r in reported}) > 1, "failure times are drawn, not fixed"
    assert ci.verdict("acme/app", "bad-0").reason == "src/c0.py is marked BROKEN"


def test_a_broken_change_fails_at_the_same_point_wherever_it_goes(sim: Simulator) -> None:
    """Like a broken test: every tree holding it fails at the same offset; two causes, the earlier."""
    world = team(sim)
    ci = TreeCI(sim, duration=DURATION, fail_at=(0.2, 1.0), seed=11)
    sim.set_pipeline_plan(ci)
    sim.commit(world.project, "one", {"src/bad1.py": "BROKEN\n"}, author=world.dev)
    sim.commit(world.project, "one-elsewhere", {"src/bad1.py": "BROKEN\n", "docs.md": "other tree\n"},
               author=world.dev)
    sim.commit(world.project, "two", {"src/bad2.py": "BROKEN\n"}, author=world.dev)
    sim.commit(world.project, "both", {"src/bad1.py": "BROKEN\n", "src/bad2.py": "BROKEN\n"}, author=world.dev)
    sim.clock.advance(DURATION)

    def reported(ref: str) -> float:
        pipeline = sim.pipelines(world.project, ref=ref)[0]
        assert pipeline.started_at is not None
        return round(min(j.finished_at or 0.0 for j in pipeline.jobs if j.status == "failed") - pipeline.started_at, 6)

    assert reported("one") == reported("one-elsewhere")
    assert reported("one") != reported("two")
    assert reported("both") == min(reported("one"), reported("two"))
    assert ci.verdict("acme/app", "both").causes == ("src/bad1.py is marked BROKEN", "src/bad2.py is marked BROKEN")


def test_flaky_rate_redraws_on_every_retry_of_the_same_sha(sim: Simulator) -> None:
    world = team(sim)
    ci = TreeCI(sim, duration=DURATION, flaky_rate=0.5, seed=3)
    sim.set_pipeline_plan(ci)
    sim.commit(world.project, "good", {"src/c.py": "call old\n"}, author=world.dev)
    pipeline = sim.pipelines(world.project, ref="good")[0]
    outcomes = []
    for _ in range(12):
        sim.clock.advance(DURATION)
        outcomes.append(pipeline.status)
        if pipeline.status == "failed":
            sim.backend.runner.retry(pipeline)
        else:
            sim.backend.runner.create(world.project.id, "good", pipeline.sha, "0" * 40, "api", world.bot.id)
            pipeline = sim.pipelines(world.project, ref="good")[-1]
    assert set(outcomes) == {"success", "failed"}
    assert ci.flaky_pipeline_ids and ci.tree_passes("acme/app", "good")
    replay = TreeCI(sim, duration=DURATION, flaky_rate=0.5, seed=3)
    assert [replay(r).outcome for r in _requests(pipeline.sha, 12)] == [ci(r).outcome for r in _requests(pipeline.sha, 12)]


def test_always_flaky_fails_a_good_tree(sim: Simulator) -> None:
    world = team(sim)
    sim.set_pipeline_plan(TreeCI(sim, duration=DURATION, flaky_rate=1.0))
    sim.commit(world.project, "good", {"src/c.py": "call old\n"}, author=world.dev)
    sim.clock.advance(DURATION)
    assert sim.pipelines(world.project, ref="good")[0].status == "failed"


def _requests(sha: str, count: int) -> list[PipelineRequest]:
    return [PipelineRequest("acme/app", "good", sha, "push", attempt, 1000 + attempt)
            for attempt in range(1, count + 1)]
