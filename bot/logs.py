"""Logging set-up that never lets a configured secret reach a log line."""

from __future__ import annotations

import logging
from typing import Iterable

from merge_assist.bot.settings import Secret, Settings, redact_url

MASK = "**********"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message and traceback), then masks every known secret value.

    Masking the final text instead of the record keeps other handlers' view of the record intact.
    """

    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact_url(text)


def secret_values(settings: Settings) -> list[str]:
    return [v.reveal() for v in vars(settings).values() if isinstance(v, Secret)]


def configure_logging(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(secret_values(settings)))
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
