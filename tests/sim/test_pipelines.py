"""Scripted CI on the virtual clock: outcomes, timing, flakiness, capacity, scale."""

from __future__ import annotations

import time

from gitlab_sim import PipelinePlan, PipelineRequest, SimClock, Simulator
from gitlab_sim.state import Pipeline

from .conftest import World


def push(world: World, branch: str) -> Pipeline:
    world.sim.commit(world.project, branch, {f"{branch}.txt": f"{time.monotonic()}\n"}, author=world.dev)
    return world.sim.pipelines(world.project, ref=branch)[-1]


def job_statuses(pipeline: Pipeline) -> dict[str, str]:
    return {job.name: job.status for job in pipeline.jobs}


def test_pass_takes_its_duration(world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan("pass", duration=100))
    pipeline = push(world, "a")
    assert pipeline.status == "running" and job_statuses(pipeline)["build"] == "running"
    world.sim.clock.advance(99)
    assert pipeline.status == "running"
    world.sim.clock.advance(1)
    assert pipeline.status == "success" and set(job_statuses(pipeline).values()) == {"success"}


def test_early_failure_reports_the_job_while_the_pipeline_runs(world: World) -> None:
    world.sim.set_pipeline_plan(PipelinePlan("fail", duration=100, fail_when="early"))
    pipeline = push(world, "a")
    world.sim.clock.advance(50)
    assert job_statuses(pipeline) == {"build": "success", "lint": "failed", "test": "running"}
    assert pipeline.status == "running"
    world.sim.clock.advance(50)
    assert pipeline.status == "failed"


def test_late_failure_and_skip_and_never_finish(world: World) -> None:
    plans = {"late": PipelinePlan("fail", 100), "skip": PipelinePlan("skip"),
             "stuck": PipelinePlan("never_finish", 100)}
    world.sim.set_pipeline_plan(lambda request: plans[request.ref])
    late, skipped, stuck = (push(world, ref) for ref in ("late", "skip", "stuck"))
    assert skipped.status == "skipped"
    world.sim.clock.advance(60)
    assert late.status == "running" and job_statuses(late)["lint"] == "success"
    world.sim.clock.advance(10_000)
    assert late.status == "failed" and job_statuses(late)["test"] == "failed"
    assert stuck.status == "running" and job_statuses(stuck)["build"] == "running"
    world.sim.finish_pipeline(stuck.id, "canceled")
    assert stuck.status == "canceled"


def test_flaky_fails_first_attempts_then_passes_on_retry(world: World) -> None:
    seen: list[int] = []

    def resolver(request: PipelineRequest) -> PipelinePlan:
        seen.append(request.attempt)
        return PipelinePlan("flaky", 10, flaky_failures=2)

    world.sim.set_pipeline_plan(resolver)
    pipeline = push(world, "a")
    outcomes = []
    for _ in range(3):
        world.sim.clock.advance(10)
        outcomes.append(pipeline.status)
        world.sim.backend.runner.retry(pipeline)
    assert outcomes == ["failed", "failed", "success"] and seen == [1, 2, 3]


def test_runner_capacity_keeps_the_rest_pending(world: World) -> None:
    world.sim.set_runner_capacity(2)
    world.sim.set_pipeline_plan(PipelinePlan("pass", 100))
    pipelines = [push(world, f"b{i}") for i in range(5)]
    assert [p.status for p in pipelines] == ["running", "running", "pending", "pending", "pending"]
    world.sim.clock.advance(100)
    assert [p.status for p in pipelines] == ["success", "success", "running", "running", "pending"]
    world.sim.clock.advance(200)
    assert all(p.status == "success" for p in pipelines)


def test_virtual_clock_runs_hundreds_of_pipelines_quickly(world: World) -> None:
    sim, project = world.sim, world.project
    sim.set_runner_capacity(20)
    sim.set_pipeline_plan(lambda r: PipelinePlan("fail" if r.pipeline_id % 10 == 0 else "pass", 1800))
    started = time.monotonic()
    pipelines = [sim.backend.runner.create(project.id, "main", sim.branch_head(project, "main"),
                                           "0" * 40, "api", world.bot.id) for _ in range(300)]
    sim.clock.run_until_idle()
    elapsed = time.monotonic() - started
    assert [p.status for p in pipelines].count("failed") == 30
    assert all(p.status in {"success", "failed"} for p in pipelines)
    makespan = max(p.finished_at or 0 for p in pipelines) - min(p.created_at for p in pipelines)
    assert makespan == 15 * 1800  # 300 pipelines / 20 runners, 30 simulated minutes each
    assert elapsed < 15, f"took {elapsed:.1f}s"


def test_real_time_scaled_clock_finishes_pipelines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Simulator(tmp_path, SimClock.real_time(scale=600)) as sim:
        user = sim.create_user("u")
        project = sim.create_project("g/p", only_allow_merge_if_pipeline_succeeds=False)
        sim.set_pipeline_plan(PipelinePlan("pass", duration=120))  # 0.2 real seconds
        sim.commit(project, "x", {"a": "1"}, author=user)
        pipeline = sim.pipelines(project, ref="x")[0]
        sim.wait_for(lambda: pipeline.status == "success", timeout=5)
        assert pipeline.finished_at is not None and pipeline.finished_at - pipeline.started_at >= 120
