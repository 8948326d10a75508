"""Logging set-up that never lets a configured secret reach a log line."""

from __future__ import annotations

import logging
from typing import Iterable

from bot.settings import Secret, Settings

MASK = "**********"


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final message with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, MASK)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def secret_values(settings: Settings) -> list[str]:
    return [v.reveal() for v in vars(settings).values() if isinstance(v, Secret)]


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secret_values(settings)))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_merge_assist", False):
            root.removeHandler(existing)
    handler._merge_assist = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
