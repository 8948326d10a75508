"""Identity is the GitLab user id: a grant never follows a username to someone else (issue 11, #2)."""

from __future__ import annotations

import pytest

from gitlab_sim.sample import make_team
from merge_assist.storage import Store, migrate
from merge_assist.storage.models import RoleGrant, Role, User
from tests.helpers import cli


def test_a_grant_does_not_follow_a_name_to_a_new_account(store):
    carl = store.users.ensure_gitlab_user("carl", 201)
    store.users.grant(carl.id, "priority_manager")
    store.users.ensure_gitlab_user("carl-renamed", 201)  # carl renames himself
    store.users.ensure_gitlab_user("carl", 202)  # someone else takes the name
    assert store.users.roles_for(project_id=1, gitlab_user_id=202, gitlab_username="carl") == frozenset()
    assert store.users.roles_for(project_id=1, gitlab_user_id=201, gitlab_username="carl-renamed") == {
        "priority_manager"}
    assert store.users.roles_for(project_id=1, gitlab_username="carl") == frozenset()


def test_a_legacy_grant_made_by_name_alone_is_not_honoured(store):
    with store.db.session() as session:
        legacy = User(username="gitlab:carl", gitlab_username="carl", active=True)
        session.add(legacy)
        session.flush()
        role = session.query(Role).filter_by(name="admin").one()
        session.add(RoleGrant(user_id=legacy.id, role_id=role.id, project_id=None, granted_by="old cli"))
    assert store.users.roles_for(project_id=1, gitlab_user_id=303, gitlab_username="carl") == frozenset()


def test_cli_resolves_the_name_to_an_id_once_through_gitlab(tmp_path, sim):
    team = make_team(sim)
    carl = sim.create_user("carl")
    env = {"MERGE_ASSIST_GITLAB_URL": sim.url, "MERGE_ASSIST_GITLAB_TOKEN": team.bot.token}
    granted = cli(["grant", "priority_manager", "--gitlab-user", "carl"], tmp_path, env)
    assert granted.returncode == 0, granted.stderr
    assert f"GitLab id {carl.id}" in granted.stdout
    with sim.state.lock:
        carl.username = "carl-old"
    newcomer = sim.create_user("carl")
    store = Store.open(f"sqlite:///{tmp_path / 'merge-assist.db'}")
    assert store.users.roles_for(project_id=1, gitlab_user_id=newcomer.id, gitlab_username="carl") == frozenset()
    assert store.users.roles_for(project_id=1, gitlab_user_id=carl.id) == {"priority_manager"}
    assert [(a.action, a.channel) for a in store.audit.entries(action="grant")] == [("grant", "cli")]
    missing = cli(["grant", "viewer", "--gitlab-user", "nobody"], tmp_path, env)
    assert missing.returncode == 2 and "GitLab has no user named 'nobody'" in missing.stderr
    listed = cli(["users"], tmp_path, env)
    assert listed.returncode == 0 and f"(id {carl.id})" in listed.stdout and "priority_manager" in listed.stdout
    store.db.dispose()
