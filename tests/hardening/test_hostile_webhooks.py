"""Findings 1 and 3: one comment cannot stall the bot; nothing is read or parsed before the
token is checked; oversized, invalid or absurd bodies get 4xx, never 500."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from merge_assist.bot.embedded import BackgroundServer
from merge_assist.bot.parse import MAX_COMMAND_CHARS, BadSyntax, ParsedCommand, parse_command
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.webhook import MAX_BODY_BYTES
from tests.hardening.conftest import WEBHOOK_SECRET

KNOWN = ["merge", "help", "status"]
NOTE = json.loads((Path(__file__).parent.parent / "bot" / "fixtures" / "note_on_merge_request.json").read_text())


@pytest.mark.timeout(20)  # the old regex needed minutes for the first of these
@pytest.mark.parametrize("text", [
    "/merge-assist x" + " " * 60_000 + "y",
    "/merge-assist " + "\t " * 500_000 + "merge",
    " " * 999_000 + "/merge-assist merge",
    "\n" * 999_000 + "/merge-assist merge",
    "/merge-assist merge" + " " * 999_000,
    "/merge-assist " + '"' * 999_000,
    "/merge-assist " + "http://" * 140_000,
])
def test_command_text_up_to_one_megabyte_is_parsed_in_linear_time(text: str) -> None:
    result = parse_command(text, KNOWN)
    assert result is None or isinstance(result, (ParsedCommand, BadSyntax))


def test_a_long_command_is_refused_with_a_reason_and_a_short_one_still_parses() -> None:
    assert isinstance(parse_command("/merge-assist merge " + "x" * MAX_COMMAND_CHARS, KNOWN), BadSyntax)
    assert parse_command("/merge-assist merge" + " " * 60_000, KNOWN) == ParsedCommand("merge", ())
    assert parse_command("\r\n \r\n/merge-assist status\r\nthanks", KNOWN) == ParsedCommand("status", ())


def post(client: Any, content: bytes | str, token: str | None = WEBHOOK_SECRET, event: str = "Note Hook") -> Any:
    headers = {"X-Gitlab-Event": event}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return client.post("/webhooks/gitlab", content=content, headers=headers)


HOSTILE_BODIES = [
    b'{"project":"x"}',
    b'{"project_id":1e999}',
    b'{"project_id":NaN}',
    b'{"project_id":Infinity}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"project_id":' + b"9" * 5000 + b"}",
    b"\xff\xfe{}",
    b'{"project_id": 1, "object_kind": "note"',
    b"",
]


@pytest.mark.parametrize("raw", HOSTILE_BODIES)
def test_hostile_bodies_get_401_with_a_wrong_token_and_400_with_the_right_one(client, runtime, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    assert post(client, raw, token="wrong").status_code == 401
    assert post(client, raw, token=None).status_code == 401
    response = post(client, raw)
    assert response.status_code == 400, response.text
    assert runtime.queue.pending() == 0


def test_a_body_over_the_cap_is_413(client, runtime) -> None:  # type: ignore[no-untyped-def]
    body = dict(NOTE, padding="x" * MAX_BODY_BYTES)
    assert post(client, json.dumps(body)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = client.post("/webhooks/gitlab", content=chunks(),
                           headers={"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": WEBHOOK_SECRET})
    assert response.status_code == 413
    assert runtime.queue.pending() == 0


def test_the_token_is_checked_before_the_body_is_read(runtime: Runtime) -> None:
    """The answer comes although the client never sends the 100 MB it announced."""
    server = BackgroundServer(runtime).start()
    try:
        host, port = server.url.removeprefix("http://").split(":")
        for token, expected in (("wrong", b" 401 "), (WEBHOOK_SECRET, b" 413 ")):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nX-Gitlab-Event: Note Hook\r\n"
                             b"X-Gitlab-Token: " + token.encode() + b"\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100000000\r\n\r\n{")
                assert expected in sock.recv(200).split(b"\r\n")[0] + b" "
    finally:
        server.stop()


def test_a_project_secret_is_accepted_before_the_body_and_checked_against_it_after(client, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.store.projects.register(NOTE["project_id"], "gitlabhq/gitlab-test", webhook_secret="own-secret")
    runtime.webhook_auth.refresh()
    assert post(client, json.dumps(NOTE), token="own-secret").status_code == 200
    other = dict(NOTE, project_id=NOTE["project_id"] + 1)
    assert post(client, json.dumps(other), token="own-secret").status_code == 401
    assert post(client, b"[" * 5000, token="own-secret").status_code == 400


def test_deliveries_without_an_idempotency_key_are_told_apart(client, runtime) -> None:  # type: ignore[no-untyped-def]
    def push(after: str) -> dict[str, Any]:
        return {"object_kind": "push", "ref": "refs/heads/main", "after": after, "project_id": 5,
                "project": {"id": 5, "default_branch": "main"}, "total_commits_count": 1,
                "commits": [{"added": [], "modified": [".merge-assist.yml"], "removed": []}]}

    for after in ("a" * 40, "b" * 40):
        assert post(client, json.dumps(push(after)), event="Push Hook").json()["status"] == "queued"
    keys = {runtime.queue._queue.get_nowait()[0]["key"] for _ in range(2)}
    assert len(keys) == 2
