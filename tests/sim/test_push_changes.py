"""Push hooks list each commit's added, modified and removed paths, as GitLab's do."""

from gitlab_sim.hook_payloads import push_payload


def test_push_payload_lists_changed_paths(world):
    sim, project, user = world.sim, world.project, world.dev
    before = sim.branch_head(project, "main")
    sim.commit(project, "main", {"new.txt": "n\n", "app.py": "x = 2\n"}, "Add and change", user)
    sim.commit(project, "main", {"README.md": None}, "Remove the readme", user)
    payload = push_payload(sim.backend, project, user, "main", before, sim.branch_head(project, "main"))
    newest, older = payload["commits"]
    assert (newest["added"], newest["modified"], newest["removed"]) == ([], [], ["README.md"])
    assert (older["added"], older["modified"], older["removed"]) == (["new.txt"], ["app.py"], [])
    assert payload["total_commits_count"] == 2
    assert "README.md" not in sim.repo(project).out("ls-tree", "--name-only", "main").split()
