"""Helpers for the rules end-to-end tests: an embedded bot with an injected clock and extra
plugins, a settable clock, the repo config file, notes, deliveries and metrics."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from merge_assist.bot.embedded import BackgroundServer
from merge_assist.bot.runtime import Runtime
from gitlab_sim import Simulator
from merge_assist.rules.config import REPO_CONFIG_FILE
from tests.e2e.harness import WEBHOOK_SECRET, Bot, World, bot_settings
from tests.helpers import wait_for

class SettableClock:
    """`rules.ports.Clock` whose time only moves when a test sets it."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self._now = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


def start_bot(sim: Simulator, world: World, tmp_path: Path, *, clock: Any = None,
              extra_plugins: tuple[object, ...] = (), **overrides: Any) -> Bot:
    """An embedded bot (SQLite, in-process queue) like `harness.start_embedded`, with `clock=`
    and `extra_plugins=` passed to `Runtime.build`. Entry-point plugins on sys.path load too."""
    settings = bot_settings(sim, world, f"sqlite:///{tmp_path / 'rules-bot.db'}", **overrides)
    runtime = Runtime.build(settings, run_workers=True, clock=clock, extra_plugins=extra_plugins)
    try:
        server = BackgroundServer(runtime).start()
    except Exception:
        runtime.stop()
        raise
    sim.add_hook(world.project, f"{server.url}/webhooks/gitlab", WEBHOOK_SECRET)
    return Bot("embedded", server.url, runtime.store, server=server)


def runtime_of(bot: Bot) -> Runtime:
    assert bot.server is not None
    return bot.server.runtime


def commit_config(world: World, text: str, message: str = "Configure Merge Assist") -> str:
    """Commit `.merge-assist.yml` directly on the default branch (as a maintainer's push)."""
    return world.sim.commit(world.project, world.project.default_branch, {REPO_CONFIG_FILE: text},
                            message, world.maintainer)


def wait_note(world: World, iid: int, *needles: str, timeout: float = 60.0) -> str:
    """The first bot note on !iid containing every needle."""
    def found() -> str | None:
        return next((n for n in world.notes(iid) if all(needle in n for needle in needles)), None)

    return wait_for(found, timeout=timeout, message=f"a bot note on !{iid} with {needles!r}")  # type: ignore[return-value]


def wait_merge_event_handled(bot: Bot, world: World, iid: int, timeout: float = 20.0) -> None:
    """Wait until the bot has handled the `merge` Merge Request Hook of !iid (the event that
    makes it re-read the default branch's configuration)."""
    def delivery_key() -> str | None:
        for delivery in world.sim.deliveries():
            attributes = delivery.payload.get("object_attributes") or {}
            if (delivery.event == "merge_request" and attributes.get("action") == "merge"
                    and attributes.get("iid") == iid):
                return f"idem:{delivery.idempotency_key}"
        return None

    key: str = wait_for(delivery_key, timeout=timeout, message=f"the merge event of !{iid}")  # type: ignore[assignment]
    wait_for(lambda: bot.store.deliveries.seen(key), timeout=timeout, message=f"the bot to handle the merge of !{iid}")


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` from a Prometheus text page at `url`."""
    response = httpx.get(url, timeout=5.0)
    response.raise_for_status()
    samples = []
    for line in response.text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and match["name"] == name:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples.append((labels, float(match["value"])))
    return samples
