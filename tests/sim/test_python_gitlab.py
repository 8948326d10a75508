"""python-gitlab, unmodified, drives the simulator over real HTTP."""

from __future__ import annotations

import gitlab
import pytest

from gitlab_sim import PipelinePlan

from .conftest import World


def client(world: World, token: str | None = None) -> gitlab.Gitlab:
    return gitlab.Gitlab(world.sim.url, private_token=token or world.bot.token, timeout=10)


def test_auth_and_current_user(world: World) -> None:
    gl = client(world)
    gl.auth()
    assert gl.user.username == "merge-bot"
    assert gl.user.email == "merge-bot@example.com"
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gitlab.Gitlab(world.sim.url, private_token="nope").auth()


def test_project_by_encoded_path_and_members_all(world: World) -> None:
    gl = client(world)
    project = gl.projects.get("acme/app")
    assert project.id == world.project.id and project.merge_method == "merge"
    assert project.members_all.get(world.bot.id).access_level == 40  # inherited from group
    assert project.members_all.get(world.dev.id).access_level == 30  # direct
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.members_all.get(world.outsider.id)
    assert err.value.response_code == 404
    direct = {world.dev.username, world.reporter.username}
    inherited = {world.bot.username, world.maintainer.username}
    assert {m.username for m in project.members_all.list(get_all=True)} == direct | inherited
    assert {m.username for m in project.members.list(get_all=True)} == direct


def test_rebase_then_merge_with_sha(world: World) -> None:
    sim, proj = world.sim, world.project
    sim.set_pipeline_plan(PipelinePlan("pass", duration=60))
    sim.create_merge_request(proj, "feature", title="Add feature", author=world.dev,
                             files={"feature.txt": "new\n"})
    sim.commit(proj, "main", {"other.txt": "moved on\n"}, author=world.dev)
    gl = client(world)
    mr = gl.projects.get(proj.id, lazy=True).mergerequests.get(1)
    old_sha = mr.sha
    assert mr.diff_refs["head_sha"] == old_sha
    mr.rebase()
    polled = sim.wait_for(lambda: (m := gl.projects.get(proj.id, lazy=True).mergerequests.get(
        1, include_rebase_in_progress=True)) and not m.rebase_in_progress and m)
    assert polled.merge_error is None and polled.sha != old_sha
    assert sim.repo(proj).is_ancestor(sim.branch_head(proj, "main"), polled.sha)
    assert polled.detailed_merge_status == "ci_still_running"
    sim.clock.advance(60)
    mr = gl.projects.get(proj.id, lazy=True).mergerequests.get(1)
    assert mr.detailed_merge_status == "mergeable" and mr.head_pipeline["status"] == "success"
    with pytest.raises(gitlab.GitlabMRClosedError) as stale:
        mr.merge(sha=old_sha)
    assert stale.value.response_code == 409
    assert "SHA does not match HEAD of source branch" in stale.value.error_message
    mr.merge(sha=mr.sha, should_remove_source_branch=True)
    assert mr.state == "merged"
    main = sim.branch_head(proj, "main")
    assert mr.merge_commit_sha == main
    assert sim.repo(proj).commit_info(main).parents[1] == polled.sha
    assert sim.branch_head(proj, "feature") is None


def test_merge_refused_for_non_maintainer_and_when_ci_pending(world: World) -> None:
    sim, proj = world.sim, world.project
    sim.create_merge_request(proj, "feature", author=world.dev, files={"f": "1\n"})
    mr = client(world, world.dev.token).projects.get(proj.id, lazy=True).mergerequests.get(1)
    with pytest.raises(gitlab.GitlabAuthenticationError):
        mr.merge(sha=mr.sha)
    bot_mr = client(world).projects.get(proj.id, lazy=True).mergerequests.get(1)
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        bot_mr.merge(sha=bot_mr.sha)
    assert err.value.response_code == 405
    bot_mr.merge(sha=bot_mr.sha, merge_when_pipeline_succeeds=True)
    assert bot_mr.merge_when_pipeline_succeeds is True and bot_mr.state == "opened"
    sim.clock.run_until_idle()
    assert sim.merge_request(proj, 1).state == "merged"


def test_notes_and_award_emoji(world: World) -> None:
    sim, proj = world.sim, world.project
    sim.create_merge_request(proj, "feature", author=world.dev, files={"f": "1\n"})
    human_note = sim.post_note(proj, 1, world.dev, "/merge-assist queue")
    mr = client(world).projects.get(proj.id, lazy=True).mergerequests.get(1, lazy=True)
    reply = mr.notes.create({"body": "Queued."})
    assert mr.notes.get(reply.id).body == "Queued."
    assert {n.body for n in mr.notes.list(get_all=True)} == {"/merge-assist queue", "Queued."}
    assert mr.awardemojis.create({"name": "eyes"}).name == "eyes"
    with pytest.raises(gitlab.GitlabCreateError) as dup:
        mr.awardemojis.create({"name": "eyes"})
    assert dup.value.response_code == 404 and "has already been taken" in dup.value.error_message
    note_handle = mr.notes.get(human_note.id, lazy=True)
    assert note_handle.awardemojis.create({"name": "white_check_mark"}).name == "white_check_mark"
    with pytest.raises(gitlab.GitlabCreateError) as dup_note:
        note_handle.awardemojis.create({"name": "white_check_mark"})
    assert dup_note.value.response_code == 404
    assert [e.name for e in note_handle.awardemojis.list()] == ["white_check_mark"]


def test_list_assigned_to_me_paginates(world: World) -> None:
    sim, proj = world.sim, world.project
    for index in range(5):
        sim.create_merge_request(proj, f"b{index}", author=world.dev, files={f"f{index}": "x\n"},
                                 assignees=[world.bot] if index % 2 == 0 else [])
    gl = client(world)
    mine = gl.mergerequests.list(scope="assigned_to_me", state="opened", get_all=True, per_page=2)
    assert sorted(m.iid for m in mine) == [1, 3, 5]
    def page(number: int) -> list[dict[str, object]]:
        query = {"scope": "assigned_to_me", "per_page": 2, "page": number}
        return gl.http_get("/merge_requests", query_data=query)  # type: ignore[return-value]

    assert [len(page(n)) for n in (1, 2, 3)] == [2, 1, 0]  # marge pages until an empty one
    raw = gl.http_request("get", "/projects/acme%2Fapp/merge_requests", query_data={"per_page": 2})
    assert raw.headers["X-Total"] == "5" and raw.headers["X-Total-Pages"] == "3"
    assert raw.headers["X-Next-Page"] == "2" and 'rel="next"' in raw.headers["Link"]


def test_files_branches_commits_and_pipelines_endpoints(world: World) -> None:
    sim, proj = world.sim, world.project
    gl = client(world)
    project = gl.projects.get(proj.id)
    assert project.files.raw(file_path="app.py", ref="main") == b"x = 1\n"
    assert project.files.get(file_path="README.md", ref="main").decode() == b"hello\n"
    project.branches.create({"branch": "topic", "ref": "main"})
    assert project.branches.get("topic").commit["id"] == sim.branch_head(proj, "main")
    sha = sim.commit(proj, "topic", {"dir/x.txt": "1\n"}, author=world.dev)
    assert project.commits.get(sha).title == "Update files"
    pipelines = project.pipelines.list(ref="topic", sha=sha, get_all=True)
    assert len(pipelines) == 1 and pipelines[0].status == "running"
    pipeline = project.pipelines.get(pipelines[0].id)
    assert [j.name for j in pipeline.jobs.list(get_all=True)] == ["build", "lint", "test"]
    pipeline.cancel()
    assert project.pipelines.get(pipeline.id).status == "canceled"
    pipeline.retry()
    assert project.pipelines.get(pipeline.id).status == "running"
    created = project.pipelines.create({"ref": "main"})
    assert created.ref == "main" and created.sha == sim.branch_head(proj, "main")
    hook = project.hooks.create({"url": "http://127.0.0.1:9/x", "note_events": True})
    assert hook.note_events is True and hook.pipeline_events is False
    assert len(project.protectedbranches.list()) == 1
