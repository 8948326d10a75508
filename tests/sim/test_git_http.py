"""Plain git over smart HTTP: token auth, clone, push -> pipeline + MR update."""

from __future__ import annotations

from pathlib import Path

from .conftest import World
from .helpers import git


def test_clone_requires_a_token(world: World, tmp_path: Path) -> None:
    anonymous = git("clone", world.sim.clone_url(world.project), str(tmp_path / "anon"), check=False)
    assert anonymous.returncode != 0
    bad = world.sim.clone_url(world.project).replace("http://", "http://oauth2:wrong@")
    assert git("clone", bad, str(tmp_path / "bad"), check=False).returncode != 0
    denied = [r for r in world.sim.request_log("git") if r.status == 401]
    assert denied, "unauthenticated git requests are answered 401"


def test_clone_push_updates_mr_and_creates_pipeline(world: World, tmp_path: Path) -> None:
    sim, proj = world.sim, world.project
    mr = sim.create_merge_request(proj, "feature", author=world.dev, files={"a.txt": "1\n"})
    checkout = tmp_path / "work"
    git("clone", sim.clone_url(proj, world.dev), str(checkout))
    assert (checkout / "app.py").read_text() == "x = 1\n"
    git("checkout", "feature", cwd=checkout)
    (checkout / "a.txt").write_text("2\n")
    git("commit", "-am", "second", cwd=checkout)
    new_sha = git("rev-parse", "HEAD", cwd=checkout).stdout.strip()
    pushed = git("push", "origin", "feature", cwd=checkout, check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert sim.branch_head(proj, "feature") == new_sha
    assert sim.merge_request(proj, mr.iid).sha == new_sha
    assert [p.sha for p in sim.pipelines(proj, ref="feature")][-1] == new_sha
    git("push", "origin", "HEAD:refs/heads/queue/tmp-1", cwd=checkout)
    assert sim.pipelines(proj, ref="queue/tmp-1")[0].sha == new_sha
    pushes = [r for r in sim.request_log("git") if r.path.endswith("git-receive-pack")]
    assert pushes and all(r.username == "alice" for r in pushes)


def test_non_member_cannot_clone(world: World, tmp_path: Path) -> None:
    sim, proj = world.sim, world.project
    checkout = tmp_path / "ro"
    git("clone", sim.clone_url(proj, world.outsider), str(checkout), check=False)
    assert not (checkout / "app.py").exists(), "non-members cannot read the repository"
