"""The admin API behind JWT and the dashboard."""

from __future__ import annotations

import time

import jwt
import pytest

from merge_assist.bot.settings import Secret
from merge_assist.rules.model import LaneKey, Priority

JWT_SECRET = "jwt-test-secret-long-enough-for-hs256"


@pytest.fixture
def runtime_settings():
    return {"jwt_secret": Secret(JWT_SECRET)}


@pytest.fixture(autouse=True)
def users(runtime):
    admin = runtime.store.users.create_local("root", "admin-password")
    runtime.store.users.grant(admin.id, "admin")
    runtime.store.users.create_local("viewer", "viewer-password")


def token(client, username="root", password="admin-password"):
    response = client.post("/api/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_login_with_a_wrong_password_is_refused(client):
    assert client.post("/api/token", json={"username": "root", "password": "nope"}).status_code == 401
    assert client.post("/api/token", json={"username": "ghost", "password": "nope"}).status_code == 401
    assert client.post("/api/token", content=b"not json").status_code == 400


@pytest.mark.parametrize("header", [
    None,
    "Bearer not-a-jwt",
    "Bearer " + jwt.encode({"sub": "root", "roles": ["admin"], "exp": int(time.time()) + 60}, "other-secret" * 4,
                           algorithm="HS256"),
    "Bearer " + jwt.encode({"sub": "root", "roles": ["admin"], "exp": int(time.time()) - 1}, JWT_SECRET,
                           algorithm="HS256"),
])
def test_api_needs_a_valid_unexpired_token(client, header):
    headers = {"Authorization": header} if header else {}
    assert client.get("/api/queue", headers=headers).status_code == 401


def test_queue_and_audit_are_listed(client, runtime):
    runtime.store.queue.add_entry(3, 7, "main", Priority.HIGH, "alice")
    auth = token(client)
    entries = client.get("/api/queue", headers=auth).json()["entries"]
    assert [(e["mr_iid"], e["priority"], e["state"]) for e in entries] == [(7, "high", "queued")]
    audit = client.get("/api/audit", params={"target": "3!7"}, headers=auth).json()["entries"]
    assert [a["action"] for a in audit] == ["enqueue"]


def test_only_admins_pause_lanes(client, runtime):
    lane = LaneKey(3, "release/1.0")
    assert client.post("/api/lanes/3/release/1.0/pause", headers=token(client, "viewer", "viewer-password")
                       ).status_code == 403
    assert not runtime.store.queue.lane_paused(lane)
    auth = token(client)
    assert client.post("/api/lanes/3/release/1.0/pause", headers=auth).json()["paused"] is True
    assert runtime.store.queue.lane_paused(lane)
    assert client.delete("/api/lanes/3/release/1.0/pause", headers=auth).json()["paused"] is False
    assert not runtime.store.queue.lane_paused(lane)
    assert [a.action for a in runtime.store.audit.entries(target="3:release/1.0")] == ["resume", "pause"]


def test_project_settings_are_validated_and_stored(client, runtime):
    auth = token(client)
    bad = client.put("/api/projects/5", json={"path": "acme/app", "settings": {"rules": {"labels": {"blockng": []}}}},
                     headers=auth)
    assert bad.status_code == 400
    assert "rules.labels.blockng" in bad.json()["error"]
    assert runtime.store.projects.get(5) is None
    good = client.put("/api/projects/5", json={"path": "acme/app", "webhook_secret": "own",
                                               "settings": {"rules": {"labels": {"blocking": ["wip"]}}}}, headers=auth)
    assert good.status_code == 200 and good.json()["has_own_secret"] is True
    assert runtime.store.projects.get(5).settings == {"rules": {"labels": {"blocking": ["wip"]}}}
    assert runtime.webhook_auth.accepts("own", 5) and not runtime.webhook_auth.accepts("own", 6)


def test_dashboard_shows_the_queue_without_secrets(client, runtime):
    runtime.store.queue.add_entry(3, 7, "main", Priority.URGENT, "<script>alice</script>")
    page = client.get("/")
    assert page.status_code == 200
    assert "urgent" in page.text and "&lt;script&gt;" in page.text and "<script>alice" not in page.text
    assert JWT_SECRET not in page.text


def test_pausing_a_project_pauses_all_its_lanes(client, runtime):
    auth = token(client)
    assert client.post("/api/projects/9/pause", headers=auth).status_code == 404
    runtime.store.projects.register(9, "acme/app")
    assert client.post("/api/projects/9/pause", headers=auth).json()["paused"] is True
    assert runtime.store.queue.lane_paused(LaneKey(9, "main")) and runtime.store.queue.lane_paused(LaneKey(9, "x"))
    assert not runtime.store.queue.lane_paused(LaneKey(10, "main"))
    client.delete("/api/projects/9/pause", headers=auth)
    assert not runtime.store.queue.lane_paused(LaneKey(9, "main"))
