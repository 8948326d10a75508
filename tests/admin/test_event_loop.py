"""Admin handlers never block the event loop: while one is stuck in bcrypt, the database or Redis,
the same server keeps answering /healthz (issue 8)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import httpx
import pytest

from merge_assist.bot.embedded import BackgroundServer
from merge_assist.bot.runtime import Runtime
from tests.admin.conftest import make_user, sign_in


@pytest.fixture
def server(runtime: Runtime) -> Iterator[BackgroundServer]:
    running = BackgroundServer(runtime).start()
    yield running
    running.stop()


def _stall(owner: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    entered, release = threading.Event(), threading.Event()
    original: Callable[..., Any] = getattr(owner, name)

    def stuck(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, stuck)
    return entered, release


@pytest.mark.parametrize("where", ["password check", "queue publish"])
def test_health_answers_while_an_admin_request_is_stuck(server, runtime, monkeypatch, where):
    make_user(runtime, "root", ("admin", None))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = sign_in(client, "root")["access_token"]  # type: ignore[arg-type]
        if where == "password check":
            entered, release = _stall(runtime.store.users, "authenticate", monkeypatch)
            request: dict[str, Any] = {"method": "POST", "url": "/api/v1/auth/token",
                                       "json": {"username": "root", "password": "whatever-pass"}}
        else:
            entered, release = _stall(runtime.queue, "publish", monkeypatch)
            request = {"method": "DELETE", "url": "/api/v1/lanes/3/main/pause",
                       "headers": {"Authorization": f"Bearer {token}"}}
        answers: list[int] = []
        stuck = threading.Thread(target=lambda: answers.append(client.request(**request).status_code))
        stuck.start()
        try:
            assert entered.wait(30), "the admin request never reached the stalled call"
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            assert not answers, "the stalled request finished early; the test proves nothing"
        finally:
            release.set()
            stuck.join(30)
        assert answers and answers[0] in (200, 401)
