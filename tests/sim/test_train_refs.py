"""What a merge train does with refs and pipelines: temporary branches through the API and
git, their hooks, the commit API, fetching any branch, pipelines by API, cancelling, runners."""

from __future__ import annotations

from pathlib import Path

import gitlab

from gitlab_sim import PipelinePlan, Simulator
from gitlab_sim.sample import make_team

from .conftest import World
from .helpers import Receiver, git

ZERO = "0" * 40


def client(world: World) -> gitlab.Gitlab:
    return gitlab.Gitlab(world.sim.url, private_token=world.bot.token, timeout=10)


def test_temporary_branch_created_and_deleted_by_api_sends_push_hooks(world: World) -> None:
    sim, project = world.sim, world.project
    sim.set_pipeline_plan(PipelinePlan("pass", 10))
    api_project = client(world).projects.get("acme/app")
    head = sim.branch_head(project, "main")
    with Receiver() as receiver:
        sim.add_hook(project, receiver.url, events=["push", "pipeline"])
        api_project.branches.create({"branch": "merge-assist/car-1", "ref": "main"})
        assert sim.pipelines(project, ref="merge-assist/car-1")[0].sha == head
        api_project.branches.delete("merge-assist/car-1")
        sim.wait_for_deliveries()
        pushes = [(r.body["ref"], r.body["before"], r.body["after"]) for r in receiver.events("Push Hook")]
        pipeline = receiver.events("Pipeline Hook")[0].body["object_attributes"]
    assert pushes == [("refs/heads/merge-assist/car-1", ZERO, head), ("refs/heads/merge-assist/car-1", head, ZERO)]
    assert (pipeline["ref"], pipeline["sha"]) == ("merge-assist/car-1", head)
    assert sim.branch_head(project, "merge-assist/car-1") is None


def test_commit_api_and_fetching_any_branch_or_sha(world: World, tmp_path: Path) -> None:
    sim, project = world.sim, world.project
    sim.set_pipeline_plan(PipelinePlan("pass", 10))
    sha = sim.commit(project, "merge-assist/car-2", {"app.py": "x = 2\ny = 3\n"}, "car 2", author=world.bot)
    commit = client(world).projects.get("acme/app").commits.get(sha)
    assert (commit.id, commit.title, commit.status) == (sha, "car 2", "running")
    assert commit.stats == {"additions": 2, "deletions": 1, "total": 3}
    assert commit.last_pipeline["ref"] == "merge-assist/car-2" and "tree" not in commit.attributes
    checkout = tmp_path / "cache"
    git("clone", "--quiet", sim.clone_url(project, world.bot), str(checkout))
    git("fetch", "--quiet", "origin", "merge-assist/car-2", cwd=checkout)
    fetched_tree = git("rev-parse", "FETCH_HEAD^{tree}", cwd=checkout).stdout.strip()
    assert fetched_tree == sim.repo(project).commit_info(sha).tree
    sim.backend.repo(project).delete_branch("merge-assist/car-2")
    sim.backend.refs_changed(project)
    git("fetch", "--quiet", "origin", sha, cwd=checkout)  # a sha no branch points at any more
    assert git("cat-file", "-t", sha, cwd=checkout).stdout.strip() == "commit"


def test_pipeline_api_on_a_temporary_branch_and_cancel_sends_canceled_hooks(world: World) -> None:
    sim, project = world.sim, world.project
    sim.set_pipeline_plan(PipelinePlan("pass", 100))
    sha = sim.commit(project, "merge-assist/car-3", {"a.txt": "1\n"}, author=world.bot)
    api_project = client(world).projects.get("acme/app")
    with Receiver() as receiver:
        sim.add_hook(project, receiver.url, events=["pipeline", "job"])
        created = api_project.pipelines.create({"ref": "merge-assist/car-3"})
        assert (created.ref, created.sha, created.source, created.status) == ("merge-assist/car-3", sha, "api", "running")
        sim.clock.advance(30)
        api_project.pipelines.get(created.id).cancel()
        sim.wait_for_deliveries()
        pipeline_hooks = [r.body["object_attributes"] for r in receiver.events("Pipeline Hook")]
        job_hooks = [(r.body["build_name"], r.body["build_status"]) for r in receiver.events("Job Hook")]
    assert [(h["ref"], h["sha"], h["status"]) for h in pipeline_hooks][-1] == ("merge-assist/car-3", sha, "canceled")
    assert {("lint", "canceled"), ("test", "canceled"), ("build", "success")} <= set(job_hooks)
    assert api_project.pipelines.get(created.id).status == "canceled"


def test_runner_limit_is_global_and_a_cancel_frees_a_runner(sim: Simulator) -> None:
    world = make_team(sim)
    other = sim.create_project("acme/other")
    sim.set_runner_capacity(1)
    sim.set_pipeline_plan(PipelinePlan("pass", 100))
    sim.commit(world.project, "a", {"a.txt": "1\n"}, author=world.bot)
    sim.commit(other, "b", {"b.txt": "1\n"}, author=world.bot)
    first, second = sim.pipelines(world.project)[0], sim.pipelines(other)[0]
    assert (first.status, second.status) == ("running", "pending")
    sim.backend.runner.cancel(first)
    assert (first.status, second.status) == ("canceled", "running")
