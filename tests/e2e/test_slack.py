"""Slack: a signed `/merge-assist merge <MR URL>` from a linked user merges the MR; the answer goes
to the command's response_url. Unlinked users can only read; forged signatures get 401."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from merge_assist.bot.settings import Secret
from merge_assist.bot.slack import parse_slack_text
from gitlab_sim import Simulator
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, start_embedded
from tests.helpers import wait_for

SIGNING_SECRET = "slack-signing-secret"


class Responses:
    """A stand-in for Slack's response_url endpoint: records what the bot posts."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/respond"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [r.get("text", "") for r in self.received]


@pytest.fixture
def responses() -> Iterator[Responses]:
    receiver = Responses()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def slack_bot(sim: Simulator, world: World, tmp_path: Path) -> Iterator[Bot]:
    bot = start_embedded(sim, world, f"sqlite:///{tmp_path / 'bot.db'}",
                         slack_signing_secret=Secret(SIGNING_SECRET))
    yield bot
    bot.stop()


def slash_command(bot: Bot, text: str, user_id: str, response_url: str, secret: str = SIGNING_SECRET,
                  timestamp: int | None = None) -> httpx.Response:
    body = urlencode({
        "token": "deprecated", "team_id": "T1", "team_domain": "acme", "channel_id": "C1",
        "channel_name": "dev", "user_id": user_id, "user_name": "someone", "command": "/merge-assist",
        "text": text, "api_app_id": "A1", "response_url": response_url, "trigger_id": "1.2.3",
    })
    ts = str(timestamp or int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return httpx.post(f"{bot.url}/slack/events", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature})


def mr_url(world: World, iid: int) -> str:
    return f"{world.sim.url}/{world.project.path_with_namespace}/-/merge_requests/{iid}"


def test_linked_slack_user_merges_an_mr(slack_bot: Bot, world: World, responses: Responses) -> None:
    slack_bot.store.users.link_slack("alice", "U-ALICE", world.dev.id)
    iid = world.mr("from-slack")
    answer = slash_command(slack_bot, f"merge <{mr_url(world, iid)}>", "U-ALICE", responses.url)
    assert answer.status_code == 200 and "On it" in answer.text
    entry = slack_bot.wait_state(world, iid, EntryState.WAITING_PIPELINE)
    assert entry.requested_by == "alice"
    wait_for(lambda: any("Queued with priority normal" in t for t in responses.texts()), message="Slack answer")
    world.sim.clock.advance(700)
    slack_bot.wait_state(world, iid, EntryState.MERGED)
    audit = slack_bot.store.audit.entries(target=f"{world.project.id}!{iid}", action="enqueue")
    assert audit and audit[0].channel == "slack"


def test_unlinked_slack_user_can_only_read(slack_bot: Bot, world: World, responses: Responses) -> None:
    iid = world.mr("unlinked")
    refused = slash_command(slack_bot, f"merge {mr_url(world, iid)}", "U-NOBODY", responses.url)
    assert refused.status_code == 200 and "not linked" in refused.text
    status = slash_command(slack_bot, f"status {mr_url(world, iid)}", "U-NOBODY", responses.url)
    assert status.status_code == 200
    wait_for(lambda: any("pipeline" in t for t in responses.texts()), message="status answer")
    assert slack_bot.entry(iid, world.project.id) is None


@pytest.mark.parametrize("secret, age", [("forged-secret", 0), (SIGNING_SECRET, 600)])
def test_forged_or_replayed_requests_are_rejected(slack_bot: Bot, world: World, responses: Responses,
                                                  secret: str, age: int) -> None:
    answer = slash_command(slack_bot, f"merge {mr_url(world, 1)}", "U-ALICE", responses.url, secret=secret,
                           timestamp=int(time.time()) - age)
    assert answer.status_code == 401
    assert slack_bot.store.queue.all_entries() == []


@pytest.mark.parametrize("text, expected", [
    ("merge https://gitlab.example.com/acme/app/-/merge_requests/7", ("merge", "acme/app", 7)),
    ("merge --priority high <https://gl.example.com/a/b/c/-/merge_requests/12|!12>", ("merge --priority high", "a/b/c", 12)),
    ("https://gl.example.com/a/b/-/merge_requests/3", ("status", "a/b", 3)),
    ("merge", None),
])
def test_parse_slack_text(text: str, expected: tuple | None) -> None:
    assert parse_slack_text(text) == expected
