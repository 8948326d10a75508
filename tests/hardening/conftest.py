"""The web-only runtime and TestClient of tests/bot, with the global webhook secret set."""

from __future__ import annotations

from typing import Any

import pytest

from merge_assist.bot.settings import Secret
from tests.bot.conftest import client, runtime  # noqa: F401 - fixtures

WEBHOOK_SECRET = "global-webhook-secret"


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"webhook_secret": Secret(WEBHOOK_SECRET)}
