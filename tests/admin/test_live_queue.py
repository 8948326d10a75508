"""Against the simulator over real HTTP: the API shows queued MRs with title, author and reason;
priority and cancel go through the command service; the event stream brings the new order."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from gitlab_sim import PipelinePlan, Simulator
from merge_assist.bot.settings import Secret
from merge_assist.rules.model import EntryState, LaneKey
from tests.e2e.harness import Bot, World, make_world, start_embedded
from tests.helpers import wait_for

JWT_SECRET = "live-dashboard-jwt-secret-long-enough-for-hs256"
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture
def world(sim: Simulator) -> World:
    return make_world(sim)


@pytest.fixture
def bot(sim: Simulator, world: World, tmp_path: Path) -> Iterator[Bot]:
    running = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}", jwt_secret=Secret(JWT_SECRET))
    admin = running.store.users.create_local("root", ADMIN_PASSWORD)
    running.store.users.grant(admin.id, "admin")
    yield running
    running.stop()


def queue_two(bot: Bot, world: World) -> tuple[int, int]:
    """Two MRs in `main`: the first waits for its pipeline, the second queued behind it."""
    world.sim.set_pipeline_plan(PipelinePlan(duration=600.0))
    first, second = world.mr("first-change"), world.mr("second-change", title="Second change")
    world.comment(first, world.dev, "/merge-assist merge")
    bot.wait_state(world, first, EntryState.WAITING_PIPELINE)
    world.comment(second, world.dev, "/merge-assist merge")
    wait_for(lambda: len(bot.store.queue.lane_entries(LaneKey(world.project.id, "main"))) == 2, message="2 queued")
    return first, second


def sign_in(url: str) -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/auth/token", json={"username": "root", "password": ADMIN_PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def follow(url: str, headers: dict[str, str], events: "queue.Queue[dict[str, Any]]", stop: threading.Event) -> None:
    with httpx.stream("GET", f"{url}/api/v1/events", headers=headers, timeout=30) as response:
        name = ""
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "lanes":
                events.put(json.loads(line[6:]))


def order(snapshot: dict[str, Any]) -> list[int]:
    return [e["mr_iid"] for lane in snapshot["lanes"] for e in lane["entries"]]


def test_priority_change_through_the_api_arrives_on_the_event_stream(bot: Bot, world: World) -> None:
    first, second = queue_two(bot, world)
    headers = sign_in(bot.url)
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=follow, args=(bot.url, headers, events, stop), daemon=True).start()
    snapshot = events.get(timeout=20)
    assert order(snapshot) == [first, second]
    queued = snapshot["lanes"][0]["entries"][1]
    assert queued["title"] == "Second change" and queued["author"] == "alice"
    assert queued["web_url"].endswith(f"/merge_requests/{second}") and queued["project_path"] == "acme/app"
    waiting = snapshot["lanes"][0]["entries"][0]
    assert waiting["state"] == "waiting_pipeline" and waiting["reason"]
    response = httpx.post(f"{bot.url}/api/v1/entries/{queued['id']}/priority", json={"priority": "urgent"},
                          headers=headers)
    assert response.status_code == 200, response.text
    live = events.get(timeout=20)
    stop.set()
    assert order(live) == [second, first]
    assert live["lanes"][0]["entries"][0]["priority"] == "urgent"
    audit = bot.store.audit.entries(target=f"{world.project.id}!{second}", action="priority")
    assert [(a.actor, a.channel, a.detail) for a in audit] == [("root", "api", "urgent")]


def test_cancel_through_the_api_uses_the_command_service(bot: Bot, world: World) -> None:
    _, second = queue_two(bot, world)
    headers = sign_in(bot.url)
    entry = bot.store.queue.active_entry_for(world.project.id, second)
    response = httpx.post(f"{bot.url}/api/v1/entries/{entry.id}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    assert bot.store.queue.get_entry(entry.id).state is EntryState.CANCELLED
    assert "cancelled by @root" in bot.store.queue.get_entry(entry.id).reason
    again = httpx.post(f"{bot.url}/api/v1/entries/{entry.id}/cancel", headers=headers)
    assert again.status_code == 200 and "not in the queue" in again.json()["message"]
