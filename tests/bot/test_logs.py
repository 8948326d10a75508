"""Log lines: readable text by default, JSON on demand, an event id in scope, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from typing import Iterator

import pytest

from merge_assist.bot.logs import MASK, configure_logging
from merge_assist.bot.settings import Secret, Settings
from merge_assist.rules.events import event_scope, log_event

TOKEN = 'glpat-"quoted\\secret'


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_merge_assist", False):
            root.removeHandler(handler)


def configure(stream: io.StringIO, log_format: str) -> None:
    handler = configure_logging(Settings(gitlab_token=Secret(TOKEN), log_format=log_format))
    handler.setStream(stream)  # type: ignore[attr-defined]


def test_json_lines_carry_the_event_id_and_fields_and_mask_secrets(capture: io.StringIO) -> None:
    configure(capture, "json")
    with event_scope("idem:abc"):
        log_event("merged", project=7, mr=3, lane="7:main", sha=None)
        logging.getLogger("merge_assist.flow").warning("token %s leaked?", TOKEN)
    log_event("state", project=7, mr=4, state="queued")
    first, second, third = [json.loads(line) for line in capture.getvalue().splitlines()]
    assert {k: first[k] for k in ("event", "event_id", "project", "mr", "lane", "level")} == {
        "event": "merged", "event_id": "idem:abc", "project": 7, "mr": 3, "lane": "7:main", "level": "INFO"}
    assert "sha" not in first
    assert second["message"] == f"token {MASK} leaked?" and second["event_id"] == "idem:abc"
    assert third["event_id"] is None and third["event"] == "state"
    assert TOKEN not in capture.getvalue() and json.dumps(TOKEN)[1:-1] not in capture.getvalue()


def test_text_is_the_default_and_stays_readable(capture: io.StringIO) -> None:
    configure(capture, "text")
    with event_scope("hash:0123456789abcdef"):
        log_event("command", command="merge", outcome="ok", project=7, mr=3)
    line = capture.getvalue().strip()
    assert line.endswith("merge_assist.events: command command=merge outcome=ok project=7 mr=3 "
                         "event_id=hash:0123456789abcdef")
