"""Event ids and one-line event logs: follow one delivery from the webhook to the merge.

The webhook gives each delivery an event id (from its dedupe key); the queue message carries it;
the worker handles the message inside `event_scope(event_id)`, so every line logged meanwhile,
in any module, carries that id. What the bot does is logged with `log_event`:

    log_event("command", project=7, mr=3, command="merge", outcome="ok")
    log_event("state", project=7, mr=3, lane="7:main", state="merging", previous="waiting_pipeline")
    log_event("merged", project=7, mr=3, lane="7:main", sha="abc123")
    log_event("failed", project=7, mr=3, lane="7:main", reason="job_failed")

Kinds in use: webhook, command, state, merged, failed. Field values are short facts (ids,
states, labels); never put tokens or message bodies in them. `bot.logs` renders them as text or
JSON (`MERGE_ASSIST_LOG_FORMAT=json`) and masks configured secrets either way.
"""

from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar
from typing import Iterator

EVENT_ID: ContextVar[str | None] = ContextVar("merge_assist_event_id", default=None)
EVENTS_LOGGER = "merge_assist.events"
_log = logging.getLogger(EVENTS_LOGGER)

FieldValue = str | int | float | bool | None


@contextlib.contextmanager
def event_scope(event_id: str | None) -> Iterator[None]:
    """Everything logged inside carries `event_id`."""
    token = EVENT_ID.set(event_id)
    try:
        yield
    finally:
        EVENT_ID.reset(token)


def current_event_id() -> str | None:
    return EVENT_ID.get()


def log_event(kind: str, /, *, level: int = logging.INFO, **fields: FieldValue) -> None:
    """One line saying what happened; `fields` become JSON keys (or `key=value` in text)."""
    if not _log.isEnabledFor(level):
        return
    present = {name: value for name, value in fields.items() if value is not None}
    text = " ".join(f"{name}={value}" for name, value in present.items())
    _log.log(level, "%s %s", kind, text, extra={"event": kind, "fields": present})
