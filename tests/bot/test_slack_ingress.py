"""`POST /slack/events` against hostile and broken input (issue 11, findings 1, 3, 4 and 5): the
body is capped and the signature checked before anything is parsed, what is wrong answers 4xx,
a signed body never answers 5xx, and `response_url` must be one of Slack's own hosts."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.testclient import TestClient

from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret
from merge_assist.bot.slack import MAX_BODY_BYTES
from merge_assist.bot.slack_respond import SlackResponder
from merge_assist.storage.slack_links import SlackLinks

SECRET = "ingress-signing-secret"
SLACK_RESPONSE_URL = "https://hooks.slack.com/commands/T1/1/abc"
FIELDS = ("token", "team_id", "channel_id", "user_id", "user_name", "command", "text", "response_url", "trigger_id")


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"slack_signing_secret": Secret(SECRET), "gitlab_url": None}


def signed_headers(body: bytes, timestamp: str | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = timestamp or str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature}


def command_body(text: str, user_id: str = "U123", response_url: str = SLACK_RESPONSE_URL) -> bytes:
    return urlencode({"user_id": user_id, "user_name": "u", "command": "/merge-assist", "text": text,
                      "response_url": response_url, "team_id": "T1"}).encode()


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/slack/events", content=body, headers=headers)


def published(runtime: Runtime) -> list[dict[str, Any]]:
    # The in-process queue holds (event, attempt); nothing consumes it in these tests.
    return [event for event, _attempt in list(runtime.queue._queue.queue)]


def test_unlinked_member_with_many_urls_gets_a_quick_answer(client: TestClient, runtime: Runtime) -> None:
    body = command_body("http://" * 570)
    answer = post(client, body, signed_headers(body))
    assert answer.status_code == 200 and "not a merge request URL" in answer.json()["text"]
    assert client.get("/healthz").status_code == 200


def test_text_over_the_limit_is_refused(client: TestClient) -> None:
    body = command_body("merge " + "x" * 5000)
    assert post(client, body, signed_headers(body)).status_code == 400


@pytest.mark.parametrize("body, headers_for", [
    (b"user_id=U1&text=\xff\xfe", lambda body: signed_headers(body)),  # signed, not UTF-8
    (b"user_id=U1&text=hi", lambda body: signed_headers(body, timestamp="12ab")),
    (b"user_id=U1&text=hi", lambda body: signed_headers(body, timestamp="1e999")),
    (b"user_id=U1&text=hi", lambda body: {**signed_headers(body), "X-Slack-Signature": "v0=\u00e9".encode("latin-1")}),
    (b"\xff" * 100, lambda body: {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "x"}),
    (b"[" * 5000, lambda body: signed_headers(body)),
    (b"text=only", lambda body: signed_headers(body)),
    (b"user_id=U1&user_id=U2", lambda body: signed_headers(body)),
    (b"user_id=U%00", lambda body: signed_headers(body)),
    (b"user_id=U1&text=merge%00", lambda body: signed_headers(body)),
])
def test_broken_requests_answer_4xx(client: TestClient, runtime: Runtime, body: bytes, headers_for: Any) -> None:
    answer = post(client, body, headers_for(body))
    assert 400 <= answer.status_code < 500
    assert published(runtime) == []


def test_oversized_body_is_refused_before_the_signature(client: TestClient) -> None:
    body = b"a" * (MAX_BODY_BYTES + 1)
    assert post(client, body, {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=0"}).status_code == 413


def test_url_verification_handshake(client: TestClient) -> None:
    body = b'{"type": "url_verification", "challenge": "abc"}'
    assert post(client, body, signed_headers(body)).json() == {"challenge": "abc"}


@pytest.mark.parametrize("response_url", [
    "https://attacker.example/x", "http://hooks.slack.com/commands/1", "https://hooks.slack.com.evil.com/x",
    "https://user@hooks.slack.com/x", "https://hooks.slack.com:99999/x", "http://[::1", "not a url",
])
def test_response_url_must_be_slack(client: TestClient, runtime: Runtime, response_url: str) -> None:
    SlackLinks(runtime.store.db).link("U123", 7, "alice")
    body = command_body("merge acme/app!1", response_url=response_url)
    assert post(client, body, signed_headers(body)).status_code == 400
    assert published(runtime) == []


def test_a_linked_command_is_queued_with_its_response_url(client: TestClient, runtime: Runtime) -> None:
    SlackLinks(runtime.store.db).link("U123", 7, "alice")
    body = command_body("merge --priority high acme/app!12")
    answer = post(client, body, signed_headers(body))
    assert answer.status_code == 200 and "On it" in answer.json()["text"]
    [event] = published(runtime)
    assert event["kind"] == "slack" and event["gitlab_user_id"] == 7 and event["mr_iid"] == 12
    assert event["args"] == ["--priority", "high"] and event["response_url"] == SLACK_RESPONSE_URL


def test_a_replayed_request_is_not_carried_out_twice(client: TestClient, runtime: Runtime) -> None:
    SlackLinks(runtime.store.db).link("U123", 7, "alice")
    body = command_body("merge acme/app!12")
    headers = signed_headers(body)
    assert "On it" in post(client, body, headers).json()["text"]
    assert "already have" in post(client, body, headers).json()["text"]
    assert len(published(runtime)) == 1


def test_notify_is_not_turned_on_without_a_bot_token(client: TestClient, runtime: Runtime) -> None:
    links = SlackLinks(runtime.store.db)
    links.link("U123", 7, "alice")
    body = command_body("notify on")
    assert "no Slack bot token" in post(client, body, signed_headers(body)).json()["text"]
    assert links.notify_enabled("U123") is False
    body = command_body("notify off")
    assert "now off" in post(client, body, signed_headers(body)).json()["text"]


def test_unparsable_response_url_never_raises() -> None:
    responder = SlackResponder(("https://hooks.slack.com",))
    for url in ("http://[::1", "https://hooks.slack.com:99999/x", "https://hooks.slack.com/\x00", ""):
        assert responder.respond(url, "hello") is False


form_values = st.one_of(st.text(max_size=300), st.sampled_from([
    "merge acme/app!1", "status http://gitlab.example.com/acme/app/-/merge_requests/1", "queue", "link alice",
    "http://" * 50, "<" * 50, "U" * 80, "", "\x00", "pause acme/app main", "unlink", "help",
    SLACK_RESPONSE_URL, "https://hooks.slack.com:0/x",
]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(FIELDS), st.lists(form_values, min_size=1, max_size=2)),
       raw=st.binary(max_size=200), use_raw=st.booleans())
def test_signed_bodies_never_get_5xx(client: TestClient, caplog: pytest.LogCaptureFixture,
                                     fields: dict[str, list[str]], raw: bytes, use_raw: bool) -> None:
    body = raw if use_raw else urlencode(fields, doseq=True).encode()
    answer = post(client, body, signed_headers(body))
    assert answer.status_code < 500, answer.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an error was logged"
