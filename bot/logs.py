"""Logging set-up that never lets a configured secret reach a log line.

Text by default (one readable line, ` event_id=...` appended while handling an event); JSON lines
with `MERGE_ASSIST_LOG_FORMAT=json`: time, level, logger, message, event_id, and for the lines of
`rules.events.log_event` the event kind and its fields as keys.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Iterable

from merge_assist.bot.settings import Secret, Settings, redact_url
from merge_assist.rules.events import current_event_id

MASK = "**********"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RESERVED_KEYS = ("time", "level", "logger", "message", "event_id", "event", "exception")


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message and traceback), then masks every known secret value.

    Masking the final text instead of the record keeps other handlers' view of the record intact.
    """

    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        event_id = current_event_id()
        return self.redact(f"{text} event_id={event_id}" if event_id else text)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact_url(text)


class JsonFormatter(RedactingFormatter):
    """One JSON object per line; every string is masked before encoding (escaping could hide a secret)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="microseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "event_id": current_event_id(),
        }
        if getattr(record, "event", None):
            line["event"] = record.event  # type: ignore[attr-defined]
            fields: dict[str, Any] = getattr(record, "fields", {})
            line.update({name: value for name, value in fields.items() if name not in RESERVED_KEYS})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps({key: self.redact(value) if isinstance(value, str) else value
                           for key, value in line.items()}, default=str)


def secret_values(settings: Settings) -> list[str]:
    return [v.reveal() for v in vars(settings).values() if isinstance(v, Secret)]


def configure_logging(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler()
    formatter = JsonFormatter if settings.log_format == "json" else RedactingFormatter
    handler.setFormatter(formatter(secret_values(settings)))
    handler._merge_assist = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_merge_assist", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("httpx", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
