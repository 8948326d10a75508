"""Cached GitLab reads, dropped by webhooks in every process at once.

A cached read belongs to a scope (a project's settings, a project's merge requests, a project's
`.merge-assist.yml`). Each scope has an epoch: an opaque token that changes whenever something
about it may have changed (`bump`, called for webhooks and for the bot's own writes). A value is
used only while its scope's epoch is still the one read *before* the value was fetched, so a
webhook handled by one worker process drops the value in all of them, and a bump that lands while
a fetch is in flight makes that fetch's answer stale at once. Each value also has a maximum age:
the safety net for a webhook GitLab never delivered.

Epochs live in Redis in production (`RedisEpochs`, one GET per lookup) and in memory in the
embedded mode (`LocalEpochs`, one process). The values themselves stay in each process.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, TypeVar

import redis

from merge_assist.rules.ports import ReadEpochs

log = logging.getLogger("merge_assist.read_cache")
T = TypeVar("T")
MAX_ENTRIES = 10_000
EPOCH_KEY_SECONDS = 6 * 3600
"""How long Redis keeps an epoch after its last bump. Longer than any value is cached, so a key that
expires (and reads as "" again) cannot make a value read before its last bump look current."""


def project_scope(project_id: int) -> str:
    """Project settings and protected-branch rules."""
    return f"project:{project_id}"


def merge_requests_scope(project_id: int) -> str:
    """The project's merge requests (single reads and open lists) and branch heads."""
    return f"mrs:{project_id}"


def config_scope(project_id: int) -> str:
    """The project's effective configuration (`.merge-assist.yml` on its default branch)."""
    return f"config:{project_id}"


class LocalEpochs:
    """`ReadEpochs` for one process (the embedded mode)."""

    def __init__(self) -> None:
        self._epochs: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def current(self, scope: str) -> str:
        with self._lock:
            return self._epochs.get(scope, "")

    def bump(self, scope: str) -> None:
        with self._lock:
            self._epochs[scope] = str(next(self._counter))


class RedisEpochs:
    """`ReadEpochs` shared by every process through Redis. When Redis does not answer, `current`
    returns a token that matches nothing (every read goes to GitLab) and `bump` raises, so the
    event that asked for it is delivered again rather than forgotten."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = f"{prefix}:read-epoch:"

    def current(self, scope: str) -> str:
        try:
            raw = self._redis.get(self._prefix + scope)
        except redis.RedisError as exc:
            log.warning("cannot read the cache epoch of %s (%s); reading GitLab instead", scope, type(exc).__name__)
            return f"unknown:{uuid.uuid4().hex}"
        return raw.decode() if isinstance(raw, bytes) else ""

    def bump(self, scope: str) -> None:
        self._redis.set(self._prefix + scope, uuid.uuid4().hex, ex=EPOCH_KEY_SECONDS)


def bump_quietly(epochs: ReadEpochs, scope: str) -> None:
    """For the bot's own writes, after GitLab accepted them: a failure to bump must not turn a done
    merge into an error; the value's maximum age still bounds how long another process keeps it."""
    try:
        epochs.bump(scope)
    except redis.RedisError as exc:
        log.warning("cannot drop cached reads of %s (%s)", scope, type(exc).__name__)


@dataclass(frozen=True)
class _Entry:
    epoch: str
    loaded_at: float
    value: Any


class EpochCache(Generic[T]):
    """Values of one kind, each under a scope, kept at most `seconds` and while the scope's epoch holds."""

    def __init__(self, epochs: ReadEpochs, seconds: float) -> None:
        self._epochs = epochs
        self._seconds = seconds
        self._items: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, scope: str, key: Hashable, load: Callable[[], T]) -> T:
        """The cached value, else `load()`'s (then cached)."""
        epoch = self._epochs.current(scope)
        hit = self._valid(key, epoch)
        if hit is not None:
            return hit.value  # type: ignore[no-any-return]
        return self.store(key, epoch, load())

    def peek(self, scope: str, key: Hashable) -> T | None:
        """The cached value, or None; never asks GitLab."""
        hit = self._valid(key, self._epochs.current(scope))
        return hit.value if hit is not None else None

    def fresh(self, scope: str, key: Hashable, load: Callable[[], T]) -> T:
        """`load()`'s value, cached for later `peek`s."""
        epoch = self._epochs.current(scope)  # before the load: a bump during it makes the answer stale
        return self.store(key, epoch, load())

    def store(self, key: Hashable, epoch: str, value: T) -> T:
        now = time.monotonic()
        with self._lock:
            self._items[key] = _Entry(epoch, now, value)
            if len(self._items) > MAX_ENTRIES:  # one entry per MR ever read: forget the expired ones
                self._items = {k: e for k, e in self._items.items() if now - e.loaded_at < self._seconds}
        return value

    def _valid(self, key: Hashable, epoch: str) -> _Entry | None:
        with self._lock:
            entry = self._items.get(key)
        if entry is None or entry.epoch != epoch or time.monotonic() - entry.loaded_at >= self._seconds:
            return None
        return entry


class ReadInvalidation:
    """What webhooks drop (bot.dispatch calls it for every delivery it handles)."""

    def __init__(self, epochs: ReadEpochs) -> None:
        self._epochs = epochs

    def merge_requests_changed(self, project_id: int) -> None:
        self._epochs.bump(merge_requests_scope(project_id))

    def config_changed(self, project_id: int) -> None:
        self._epochs.bump(config_scope(project_id))
