"""The versioned admin API: its OpenAPI description, audit filters and cursor, users and grants,
project settings (validated, typed), freeze, rules and commands, Slack links."""

from __future__ import annotations

import re

import pytest

from merge_assist.bot.admin import API_ROUTES
from merge_assist.rules.model import Actor, LaneKey, Priority
from tests.admin.conftest import PROJECT, auth, bearer, make_user, sign_in


@pytest.fixture
def admin(client, runtime):
    make_user(runtime, "root", ("admin", None))
    return auth(client, "root")


def test_openapi_describes_every_route_the_app_serves(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    document = spec.json()
    assert document["openapi"].startswith("3.")
    served = {(route.path, method) for route in client.app.routes for method in (getattr(route, "methods", None) or ())
              if route.path.startswith("/api/v1/") and method != "HEAD"}
    described = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    assert {(re.sub(r":\w+}", "}", path), method) for path, method in served} == described
    for route in API_ROUTES:
        operation = document["paths"][re.sub(r":\w+}", "}", route.path)][route.method.lower()]
        assert operation["summary"] and (operation["security"] == [] if route.permission is None else
                                         operation["x-permission"] == route.permission.value)


def test_audit_filters_and_cursor_pagination(client, runtime, admin):
    audit = runtime.store.audit
    for number in range(7):
        audit.record(Actor(501, "alice", "gitlab"), "command:merge", f"{PROJECT}!{number}", "ok")
    audit.record(Actor(502, "bob", "gitlab"), "command:cancel", f"{PROJECT}:main", "ok")
    audit.record(Actor(502, "bob", "gitlab"), "command:merge", "99!1", "ok")
    seen, cursor = [], None
    while True:
        params = {"project": str(PROJECT), "action": "command:merge", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/audit", params=params, headers=admin).json()
        seen += [entry["target"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{PROJECT}!{n}" for n in reversed(range(7))]
    by_actor_id = client.get("/api/v1/audit", params={"actor": "502"}, headers=admin).json()["entries"]
    assert {e["target"] for e in by_actor_id} == {f"{PROJECT}:main", "99!1"}
    prefix = client.get("/api/v1/audit", params={"action": "command:*", "actor": "bob"}, headers=admin).json()
    assert len(prefix["entries"]) == 2
    future = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=admin).json()
    assert future["entries"] == []
    past = client.get("/api/v1/audit", params={"until": "2000-01-01T00:00:00"}, headers=admin).json()
    assert past["entries"] == []
    for bad in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "-1"}):
        assert client.get("/api/v1/audit", params=bad, headers=admin).status_code == 400


def test_users_and_grants_are_managed_and_audited(client, runtime, admin):
    created = client.post("/api/v1/users", json={"username": "dana", "password": "dana-password",
                                                 "email": "dana@example.com"}, headers=admin)
    assert created.status_code == 201 and created.json()["active"] is True
    assert "password" not in str(created.json()).replace("can_sign_in", "")
    assert client.post("/api/v1/users", json={"username": "dana", "password": "dana-password"},
                       headers=admin).status_code == 409
    assert client.post("/api/v1/users", json={"username": "eve", "password": "short"}, headers=admin).status_code == 400
    assert client.post("/api/v1/users", json={"username": "gitlab:5", "password": "long-enough"},
                       headers=admin).status_code == 400
    dana_id = created.json()["id"]
    grant = client.post("/api/v1/grants", json={"user_id": dana_id, "role": "project_owner", "project_id": PROJECT},
                        headers=admin)
    assert grant.status_code == 201
    assert client.post("/api/v1/grants", json={"user_id": dana_id, "role": "wizard"}, headers=admin).status_code == 400
    dana = bearer(sign_in(client, "dana", "dana-password")["access_token"])
    assert client.post("/api/v1/grants", json={"gitlab_user_id": 777, "gitlab_username": "gus", "role": "viewer",
                                               "project_id": PROJECT}, headers=dana).status_code == 201
    assert client.post("/api/v1/grants", json={"gitlab_user_id": 777, "role": "admin", "project_id": PROJECT},
                       headers=dana).status_code == 403
    assert runtime.store.users.roles_for(project_id=PROJECT, gitlab_user_id=777) == {"viewer"}
    roles = {r["name"]: r["permissions"] for r in client.get("/api/v1/roles", headers=dana).json()["roles"]}
    assert "priority" in roles["priority_manager"] and "manage_users" not in roles["project_owner"]
    listed = client.get("/api/v1/users", headers=admin).json()["users"]
    assert {u["username"] for u in listed} >= {"root", "dana", "gitlab:777"}
    assert client.delete(f"/api/v1/grants/{grant.json()['id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/projects", headers=dana).status_code == 403
    actions = [a.action for a in runtime.store.audit.entries() if a.channel == "api"]
    assert {"user:create", "grant", "revoke", "sign_in"} <= set(actions)
    assert "refused" in {a.outcome for a in runtime.store.audit.entries(action="grant")}


def test_project_settings_are_validated_and_typed(client, runtime, admin):
    bad = client.put(f"/api/v1/projects/{PROJECT}", json={"path": "acme/app",
                     "settings": {"rules": {"labels": {"blockng": []}}}}, headers=admin)
    assert bad.status_code == 400 and "rules.labels.blockng" in bad.json()["error"]
    assert runtime.store.projects.get(PROJECT) is None
    for body in ({"path": "acme/app", "webhook_secret": 5}, {"path": ["x"]}, {"path": "a", "settings": "x"}):
        assert client.put(f"/api/v1/projects/{PROJECT}", json=body, headers=admin).status_code == 400, body
    assert client.put(f"/api/v1/projects/{2**63}", json={"path": "acme/app"}, headers=admin).status_code == 400
    good = client.put(f"/api/v1/projects/{PROJECT}", json={"path": "acme/app", "webhook_secret": "hook-s3cret-value",
                      "settings": {"rules": {"labels": {"blocking": ["wip"]}}}}, headers=admin)
    assert good.status_code == 200 and good.json()["has_own_secret"] is True
    assert runtime.webhook_auth.accepts("hook-s3cret-value", PROJECT)
    assert not runtime.webhook_auth.accepts("hook-s3cret-value", PROJECT + 1)
    assert "hook-s3cret-value" not in good.text


def test_freeze_windows_are_validated_stored_and_removed(client, runtime, admin):
    runtime.store.projects.register(PROJECT, "acme/app", settings={"rules": {"labels": {"blocking": ["wip"]}}})
    bad = client.put(f"/api/v1/projects/{PROJECT}/freeze", json={"windows": ["sometime"]}, headers=admin)
    assert bad.status_code == 400 and "freeze" in bad.json()["error"]
    frozen = client.put(f"/api/v1/projects/{PROJECT}/freeze", json={"windows": ["Friday 13:00 - Monday 09:00"],
                                                                    "timezone": "Europe/Berlin"}, headers=admin)
    assert frozen.status_code == 200
    settings = runtime.store.projects.get(PROJECT).settings
    assert settings["rules"]["freeze"]["windows"] == ["Friday 13:00 - Monday 09:00"]
    assert settings["rules"]["labels"] == {"blocking": ["wip"]}
    assert client.delete(f"/api/v1/projects/{PROJECT}/freeze", headers=admin).status_code == 200
    assert "freeze" not in runtime.store.projects.get(PROJECT).settings["rules"]
    assert [a.action for a in runtime.store.audit.entries(target=str(PROJECT))] == ["unfreeze", "freeze"]


def test_pause_and_resume_lanes_and_projects(client, runtime, admin):
    lane = LaneKey(PROJECT, "release/1.0")
    assert client.post(f"/api/v1/lanes/{PROJECT}/release/1.0/pause", headers=admin).json()["paused"] is True
    assert runtime.store.queue.lane_paused(lane)
    assert client.delete(f"/api/v1/lanes/{PROJECT}/release/1.0/pause", headers=admin).json()["paused"] is False
    assert not runtime.store.queue.lane_paused(lane)
    assert client.post("/api/v1/projects/9/pause", headers=admin).status_code == 404
    runtime.store.projects.register(9, "acme/nine")
    assert client.post("/api/v1/projects/9/pause", headers=admin).json()["paused"] is True
    assert runtime.store.queue.lane_paused(LaneKey(9, "main"))
    assert [a.action for a in runtime.store.audit.entries(target=f"{PROJECT}:release/1.0")] == ["resume", "pause"]


def test_lanes_show_entries_in_merge_order_with_reasons(client, runtime, admin):
    runtime.store.projects.register(PROJECT, "acme/app")
    first = runtime.store.queue.add_entry(PROJECT, 1, "main", Priority.NORMAL, "alice")
    runtime.store.queue.add_entry(PROJECT, 2, "main", Priority.URGENT, "bob")
    runtime.store.queue.transition(first.id, first.state, first.state, "waiting for the pipeline of !2")
    lanes = client.get("/api/v1/lanes", headers=admin).json()["lanes"]
    assert [(e["mr_iid"], e["position"], e["priority"]) for e in lanes[0]["entries"]] == [(2, 1, "urgent"),
                                                                                           (1, 2, "normal")]
    assert lanes[0]["project_path"] == "acme/app" and lanes[0]["entries"][1]["reason"].startswith("waiting")
    assert "manage_project" in lanes[0]["allowed"]


def test_rules_and_commands_come_with_their_help(client, admin):
    listing = client.get("/api/v1/rules", headers=admin).json()
    assert {"freeze", "labels"} <= {rule["name"] for rule in listing["rules"]}
    merge = next(c for c in listing["commands"] if c["name"] == "merge")
    assert merge["usage"] and merge["who_can_use"] and merge["mutates"] is True


def test_slack_links_are_listed_by_gitlab_id(client, runtime, admin):
    runtime.store.users.link_slack("alice", "U-ALICE", 501)
    assert client.get("/api/v1/slack-links", headers=admin).json()["links"] == [
        {"slack_user_id": "U-ALICE", "gitlab_user_id": 501, "gitlab_username": "alice"}]


def test_dashboard_page_holds_no_data_before_sign_in(client, runtime):
    runtime.store.queue.add_entry(PROJECT, 7, "main", Priority.URGENT, "<script>alice</script>")
    page = client.get("/")
    assert page.status_code == 200 and "Sign in" in page.text
    assert "alice" not in page.text and "urgent" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/dashboard.js").status_code == 200
    assert client.get("/api/v1/events").status_code == 401
    make_user(runtime, "nobody")
    no_roles = client.get("/api/v1/events", headers=auth(client, "nobody"))
    assert no_roles.status_code == 403
    assert sign_in(client, "nobody")["token_type"] == "bearer"


def test_bodies_follow_the_described_schema(client, admin):
    document = client.get("/api/v1/openapi.json").json()
    schema = document["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"] == {"username": {"type": "string"}, "password": {"type": "string"}}
    assert schema["required"] == ["username", "password"] and schema["additionalProperties"] is False
    typo = client.put(f"/api/v1/projects/{PROJECT}", json={"path": "acme/app", "setings": {}}, headers=admin)
    assert typo.status_code == 400 and "unknown fields: setings" in typo.json()["error"]
    assert client.post("/api/v1/auth/token", json={"username": "root"}).json() == {"error": "password: required"}
