"""Merge commit, fast-forward, semi-linear and squash merges; conflicts; failed rebases."""

from __future__ import annotations

import httpx

from gitlab_sim import Simulator
from gitlab_sim.state import MAINTAINER, Project, User

from .helpers import api


def setup(sim: Simulator, merge_method: str) -> tuple[Project, User, httpx.Client]:
    bot = sim.create_user("bot")
    project = sim.create_project(f"team/{merge_method}", merge_method=merge_method,
                                 only_allow_merge_if_pipeline_succeeds=False,
                                 files={"shared.txt": "base\n"})
    sim.add_member(project, bot, MAINTAINER)
    return project, bot, api(sim.url, bot.token)


def mr_path(project: Project, iid: int = 1) -> str:
    return f"/projects/{project.id}/merge_requests/{iid}"


def rebase(sim: Simulator, client: httpx.Client, project: Project) -> dict[str, object]:
    assert client.put(f"{mr_path(project)}/rebase").json() == {"rebase_in_progress": True}
    return sim.wait_for(lambda: (m := client.get(mr_path(project), params={
        "include_rebase_in_progress": "true"}).json()) and not m["rebase_in_progress"] and m)


def test_fast_forward_needs_rebase_then_fast_forwards(sim: Simulator) -> None:
    project, bot, client = setup(sim, "ff")
    sim.create_merge_request(project, "feature", author=bot, files={"f.txt": "1\n"})
    sim.commit(project, "main", {"g.txt": "2\n"}, author=bot)
    mr = client.get(mr_path(project)).json()
    assert mr["detailed_merge_status"] == "need_rebase" and mr["has_conflicts"] is False
    refused = client.put(f"{mr_path(project)}/merge", params={"sha": mr["sha"]})
    assert refused.status_code == 422
    rebased = rebase(sim, client, project)
    assert rebased["merge_error"] is None and rebased["detailed_merge_status"] == "mergeable"
    merged = client.put(f"{mr_path(project)}/merge", json={"sha": rebased["sha"]}).json()
    assert merged["state"] == "merged" and merged["merge_commit_sha"] is None
    assert sim.branch_head(project, "main") == rebased["sha"]


def test_semi_linear_merge_commit_only_on_top_of_target(sim: Simulator) -> None:
    project, bot, client = setup(sim, "rebase_merge")
    sim.create_merge_request(project, "feature", author=bot, files={"f.txt": "1\n"})
    assert client.get(mr_path(project)).json()["detailed_merge_status"] == "mergeable"
    sim.commit(project, "main", {"g.txt": "2\n"}, author=bot)
    assert client.get(mr_path(project)).json()["detailed_merge_status"] == "need_rebase"
    rebased = rebase(sim, client, project)
    merged = client.put(f"{mr_path(project)}/merge", data={"sha": rebased["sha"]}).json()
    parents = sim.repo(project).commit_info(merged["merge_commit_sha"]).parents
    assert parents[1] == rebased["sha"] and sim.repo(project).is_ancestor(parents[0], parents[1])


def test_merge_commit_method_merges_behind_branch_and_squashes(sim: Simulator) -> None:
    project, bot, client = setup(sim, "merge")
    sim.commit(project, "feature", {"a.txt": "1\n"}, author=bot)
    sim.commit(project, "feature", {"b.txt": "2\n"}, author=bot)
    sim.create_merge_request(project, "feature", author=bot)
    sim.commit(project, "main", {"c.txt": "3\n"}, author=bot)
    mr = client.get(mr_path(project)).json()
    assert mr["detailed_merge_status"] == "mergeable"
    merged = client.put(f"{mr_path(project)}/merge", params={"sha": mr["sha"], "squash": "true"}).json()
    repo = sim.repo(project)
    squash = repo.commit_info(merged["squash_commit_sha"])
    assert len(squash.parents) == 1 and squash.tree == repo.commit_info(mr["sha"]).tree
    merge = repo.commit_info(merged["merge_commit_sha"])
    assert merge.parents[1] == squash.sha and repo.read_file("main", "c.txt") == b"3\n"
    assert repo.read_file("main", "b.txt") == b"2\n"


def test_conflict_detected_blocks_merge_and_rebase_fails(sim: Simulator) -> None:
    project, bot, client = setup(sim, "merge")
    sim.create_merge_request(project, "feature", author=bot, files={"shared.txt": "theirs\n"})
    sim.commit(project, "main", {"shared.txt": "ours\n"}, author=bot)
    mr = client.get(mr_path(project)).json()
    assert mr["has_conflicts"] is True and mr["detailed_merge_status"] == "conflict"
    assert mr["merge_status"] == "cannot_be_merged"
    assert client.put(f"{mr_path(project)}/merge", params={"sha": mr["sha"]}).status_code == 405
    failed = rebase(sim, client, project)
    assert failed["merge_error"] == "Rebase failed. Please rebase locally"
    assert failed["sha"] == mr["sha"]


def test_blocking_checks_in_gitlab_order(sim: Simulator) -> None:
    project, bot, client = setup(sim, "merge")
    project.only_allow_merge_if_all_discussions_are_resolved = True
    project.approvals_required = 1
    reviewer = sim.create_user("reviewer")
    sim.add_member(project, reviewer, MAINTAINER)
    sim.create_merge_request(project, "feature", author=bot, files={"x": "1\n"}, draft=True)

    def status() -> str:
        return client.get(mr_path(project)).json()["detailed_merge_status"]

    assert status() == "draft_status"
    sim.set_draft(project, 1, False)
    thread = sim.add_discussion(project, 1, reviewer, "please fix")
    assert status() == "discussions_not_resolved"
    assert client.put(f"{mr_path(project)}/merge").status_code == 405
    sim.resolve_discussion(project, 1, thread.discussion_id, reviewer)
    assert status() == "not_approved"
    approvals = client.get(f"{mr_path(project)}/approvals").json()
    assert approvals["approvals_left"] == 1 and approvals["approved_by"] == []
    approve = api(sim.url, reviewer.token).post(f"{mr_path(project)}/approve")
    assert approve.status_code == 201 and approve.json()["approvals_left"] == 0
    assert status() == "mergeable"
    sim.close_mr(project, 1)
    assert status() == "not_open"
