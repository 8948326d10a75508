"""A web-only runtime (no GitLab, no workers) on a throw-away SQLite file, users with roles,
and helpers to sign in through the API."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret
from tests.bot.conftest import client, runtime  # noqa: F401 - the web-only runtime and its client

JWT_SECRET = "jwt-test-secret-long-enough-for-hs256-signing"
PASSWORD = "correct horse battery"
PROJECT, OTHER_PROJECT = 3, 4


@pytest.fixture
def runtime_settings() -> dict[str, Any]:
    return {"jwt_secret": Secret(JWT_SECRET)}


def make_user(runtime: Runtime, name: str, *grants: tuple[str, int | None]) -> int:
    user = runtime.store.users.create_local(name, PASSWORD)
    for role, project_id in grants:
        runtime.store.users.grant(user.id, role, project_id)
    return user.id


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth(client: TestClient, username: str) -> dict[str, str]:
    return bearer(sign_in(client, username)["access_token"])


@pytest.fixture(autouse=True)
def cheap_bcrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """bcrypt at cost 4 for speed; real and dummy hashes still share one cost (what matters)."""
    from merge_assist.storage import passwords

    monkeypatch.setattr(passwords, "BCRYPT_ROUNDS", 4)
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()
