"""GitLab's two timestamp formats: ISO-8601 in the REST API, ``... UTC`` in webhooks."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_time(timestamp: float | None) -> str | None:
    """REST API timestamp, e.g. ``2024-05-01T12:00:00.000Z``."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def hook_time(timestamp: float | None) -> str | None:
    """Webhook timestamp, e.g. ``2024-05-01 12:00:00 UTC``."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
