"""Pushes over smart HTTP as a merge train makes them: protected branches, push options,
``[skip ci]``, and MRs that become merged when their head commit lands on the target."""

from __future__ import annotations

from pathlib import Path

import gitlab
import pytest

from gitlab_sim import PipelinePlan, Simulator
from gitlab_sim.sample import Team, make_team
from gitlab_sim.state import DEVELOPER, User

from .conftest import World
from .helpers import Receiver, git

NOT_ALLOWED = "GitLab: You are not allowed to push code to protected branches on this project."


def clone(world: World, user: User, where: Path) -> Path:
    git("clone", "--quiet", world.sim.clone_url(world.project, user), str(where))
    return where


def commit_file(checkout: Path, name: str, text: str, message: str = "change") -> str:
    (checkout / name).parent.mkdir(parents=True, exist_ok=True)
    (checkout / name).write_text(text)
    git("add", name, cwd=checkout)
    git("commit", "--quiet", "-m", message, cwd=checkout)
    return git("rev-parse", "HEAD", cwd=checkout).stdout.strip()


def test_developer_push_to_protected_branch_is_rejected_whole(world: World, tmp_path: Path) -> None:
    sim, project = world.sim, world.project
    main_before = sim.branch_head(project, "main")
    checkout = clone(world, world.dev, tmp_path / "dev")
    commit_file(checkout, "a.txt", "1\n")
    pushed = git("push", "origin", "HEAD:main", "HEAD:refs/heads/side", cwd=checkout, check=False)
    assert pushed.returncode != 0
    assert NOT_ALLOWED in pushed.stderr and "pre-receive hook declined" in pushed.stderr
    assert sim.branch_head(project, "main") == main_before
    assert sim.branch_head(project, "side") is None, "a declined push updates no ref at all"
    assert sim.pipelines(project) == []
    assert git("push", "--quiet", "origin", "HEAD:refs/heads/side", cwd=checkout, check=False).returncode == 0


def test_developers_may_push_when_the_rule_allows_them(world: World, tmp_path: Path) -> None:
    world.project.protected_branches["main"].push_access_level = DEVELOPER
    checkout = clone(world, world.dev, tmp_path / "dev")
    sha = commit_file(checkout, "a.txt", "1\n")
    assert git("push", "--quiet", "origin", "HEAD:main", cwd=checkout, check=False).returncode == 0
    assert world.sim.branch_head(world.project, "main") == sha


def test_maintainer_fast_forwards_but_cannot_force_push_or_delete(world: World, tmp_path: Path) -> None:
    sim, project = world.sim, world.project
    checkout = clone(world, world.bot, tmp_path / "bot")
    landed = commit_file(checkout, "a.txt", "1\n")
    assert git("push", "--quiet", "origin", "HEAD:main", cwd=checkout, check=False).returncode == 0
    git("reset", "--quiet", "--hard", "HEAD~1", cwd=checkout)
    commit_file(checkout, "b.txt", "2\n")
    forced = git("push", "--force", "origin", "HEAD:main", cwd=checkout, check=False)
    assert forced.returncode != 0 and "not allowed to force push" in forced.stderr
    deleted = git("push", "origin", ":main", cwd=checkout, check=False)
    assert deleted.returncode != 0 and "only delete protected branches" in deleted.stderr
    assert sim.branch_head(project, "main") == landed


def test_push_option_ci_skip_and_skip_ci_message_record_skipped_pipelines(world: World, tmp_path: Path) -> None:
    sim, project = world.sim, world.project
    sim.set_pipeline_plan(PipelinePlan("pass", 10))
    checkout = clone(world, world.bot, tmp_path / "bot")
    commit_file(checkout, "a.txt", "1\n")
    with Receiver() as receiver:
        sim.add_hook(project, receiver.url, events=["pipeline", "push"])
        git("push", "--quiet", "-o", "ci.skip", "origin", "HEAD:refs/heads/merge-assist/skip", cwd=checkout)
        commit_file(checkout, "b.txt", "2\n", "tidy up [skip ci]")
        git("push", "--quiet", "origin", "HEAD:refs/heads/merge-assist/message", cwd=checkout)
        commit_file(checkout, "c.txt", "3\n", "a real change")
        git("push", "--quiet", "origin", "HEAD:refs/heads/merge-assist/runs", cwd=checkout)
        sim.wait_for_deliveries()
        hooks = [(r.body["object_attributes"]["ref"], r.body["object_attributes"]["status"])
                 for r in receiver.events("Pipeline Hook")]
        pushed_refs = [r.body["ref"] for r in receiver.events("Push Hook")]
    statuses = {p.ref: (p.status, len(p.jobs)) for p in sim.pipelines(project)}
    assert statuses == {"merge-assist/skip": ("skipped", 0), "merge-assist/message": ("skipped", 0),
                        "merge-assist/runs": ("running", 3)}
    assert ("merge-assist/skip", "skipped") in hooks and ("merge-assist/runs", "running") in hooks
    assert pushed_refs == [f"refs/heads/merge-assist/{b}" for b in ("skip", "message", "runs")]


def merged_by_push_team(sim: Simulator, merge_method: str) -> Team:
    world = make_team(sim, f"acme/{merge_method}", merge_method=merge_method, files={"README.md": "hi\n"})
    sim.set_pipeline_plan(PipelinePlan("pass", 10))
    sim.create_merge_request(world.project, "feature", author=world.dev, files={"f.txt": "1\n"})
    sim.commit(world.project, "main", {"g.txt": "2\n"}, author=world.maintainer)
    return world


@pytest.mark.parametrize("one_push", [False, True])
def test_rebased_mr_pushed_to_target_becomes_merged(sim: Simulator, tmp_path: Path, one_push: bool) -> None:
    world = merged_by_push_team(sim, "rebase_merge")
    checkout = clone(world, world.bot, tmp_path / "bot")
    git("checkout", "--quiet", "-b", "feature", "origin/feature", cwd=checkout)
    git("rebase", "--quiet", "origin/main", cwd=checkout)
    rebased = git("rev-parse", "HEAD", cwd=checkout).stdout.strip()
    with Receiver() as receiver:
        sim.add_hook(world.project, receiver.url, events=["merge_request"])
        if one_push:
            git("push", "--quiet", "-o", "ci.skip", "origin", "+HEAD:feature", "HEAD:main", cwd=checkout)
        else:
            git("push", "--quiet", "--force", "-o", "ci.skip", "origin", "HEAD:feature", cwd=checkout)
            git("push", "--quiet", "origin", "HEAD:main", cwd=checkout)
        sim.wait_for_deliveries()
        actions = [r.body["object_attributes"]["action"] for r in receiver.requests]
    mr = gitlab.Gitlab(sim.url, private_token=world.bot.token).projects.get("acme/rebase_merge").mergerequests.get(1)
    assert (mr.state, mr.sha, mr.merge_commit_sha, mr.merged_by["username"]) == (
        "merged", rebased, rebased, "merge-bot")
    assert mr.merged_at is not None and actions[-2:] == ["update", "merge"]


def test_merge_commit_pushed_to_target_marks_mr_merged_with_that_commit(sim: Simulator, tmp_path: Path) -> None:
    world = merged_by_push_team(sim, "merge")
    head = sim.merge_request(world.project, 1).sha
    checkout = clone(world, world.bot, tmp_path / "bot")
    git("merge", "--quiet", "--no-ff", "-m", "Merge feature", "origin/feature", cwd=checkout)
    merge_commit = git("rev-parse", "HEAD", cwd=checkout).stdout.strip()
    git("push", "--quiet", "origin", "HEAD:refs/heads/merge-assist/car", cwd=checkout)
    assert sim.merge_request(world.project, 1).state == "opened", "only the target branch merges"
    git("push", "--quiet", "origin", "HEAD:main", cwd=checkout)
    mr = sim.mr_json(world.project, 1)
    assert (mr["state"], mr["sha"], mr["merge_commit_sha"]) == ("merged", head, merge_commit)
    assert mr["merged_by"]["username"] == "merge-bot"
