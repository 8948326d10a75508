"""Event queue backends behind rules.ports.EventQueue: in-process (embedded) and Redis Streams."""

from __future__ import annotations

import collections
import heapq
import itertools
import json
import threading
import logging
import queue
import time
from typing import Any, Callable, Iterable, cast

import redis

from merge_assist.adapters.failures import failure_reason, is_poison
from merge_assist.rules.errors import HandledElsewhere
from merge_assist.rules.metrics import METRICS

log = logging.getLogger("merge_assist.queue")
Handler = Callable[[dict[str, Any]], None]
StreamMessages = list[tuple[bytes, dict[bytes, bytes] | None]]
"""Stream entries as redis-py returns them (fields are None for an entry deleted meanwhile)."""


class QueueUnavailable(RuntimeError):
    """The queue backend cannot take the event right now (e.g. Redis is down)."""


class InProcessQueue:
    """A thread-safe FIFO for embedded mode.

    An event whose handler raises (the database briefly gone, say) is retried with a growing
    delay, 1 s doubling to 60 s, for about ten minutes before it is logged and dropped. A poison
    event (adapters.failures) is set aside in `dead_letters` after its first failure.
    """

    publish_waits_on_network = False

    def __init__(self, max_attempts: int = 14, first_delay: float = 1.0, max_delay: float = 60.0) -> None:
        self._queue: queue.Queue[tuple[dict[str, Any], int]] = queue.Queue()
        self._delayed: list[tuple[float, int, dict[str, Any], int]] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._max_attempts = max_attempts
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.dead_letters: collections.deque[tuple[dict[str, Any], str]] = collections.deque(maxlen=1000)

    def publish(self, event: dict[str, Any]) -> None:
        self._queue.put((event, 1))

    def _release_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._delayed and self._delayed[0][0] <= now:
                _, _, event, attempt = heapq.heappop(self._delayed)
                self._queue.put((event, attempt))

    def _retry_later(self, event: dict[str, Any], attempt: int) -> None:
        delay = min(self._first_delay * 2 ** (attempt - 1), self._max_delay)
        with self._lock:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._sequence), event, attempt + 1))

    def consume(self, handler: Handler, *, stop: Callable[[], bool], consumer: str = "") -> None:
        while not stop():
            self._release_due()
            try:
                event, attempt = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                handler(event)
            except HandledElsewhere as exc:
                log.info("%s; trying again later", exc)
                self._retry_later(event, attempt)
            except Exception as exc:
                if is_poison(exc):
                    log.exception("event %s cannot be handled (%s); dead-lettered", event.get("kind"),
                                  failure_reason(exc))
                    self.dead_letters.append((event, failure_reason(exc)))
                    METRICS.dead_letter("poison")
                elif attempt < self._max_attempts:
                    log.exception("event handler failed (attempt %d) for %s; retrying", attempt, event.get("kind"))
                    self._retry_later(event, attempt)
                else:
                    log.exception("event handler failed %d times for %s; dropping it", attempt, event.get("kind"))
                    METRICS.dead_letter("retries")
            finally:
                self._queue.task_done()

    def ping(self) -> bool:
        return True

    def pending(self) -> int:
        with self._lock:
            return self._queue.qsize() + len(self._delayed)

    def backlog(self) -> int:
        """Events received and not yet done with: queued, being handled or waiting for a retry."""
        with self._lock:
            return self._queue.unfinished_tasks + len(self._delayed)

    def idle(self) -> bool:
        """Nothing queued, delayed or being handled (benchmarks wait for this between clock steps)."""
        return self.backlog() == 0


class RedisStreamQueue:
    """Redis Streams with a consumer group.

    A message is acknowledged only after its handler returned (so after the state change it made
    was committed); messages left pending by a dead consumer are reclaimed with XAUTOCLAIM after
    `reclaim_idle_ms`. A live consumer keeps the messages it holds fresh (`_Holding`), so however
    long a handler or a batch takes, only a dead consumer's messages are reclaimed. A message
    that keeps failing (20 deliveries: about ten minutes of a GitLab or database outage at the
    default reclaim time) is moved to a dead-letter stream; a poison message (adapters.failures)
    is moved there after its first failure, with the reason.
    """

    publish_waits_on_network = True

    def __init__(self, url: str, prefix: str, *, group: str = "workers", reclaim_idle_ms: int = 30_000,
                 max_deliveries: int = 20, maxlen: int = 100_000) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.stream = f"{prefix}:events"
        self.dead_letters = f"{prefix}:events:dead"
        self._group = group
        self._reclaim_idle_ms = reclaim_idle_ms
        self._max_deliveries = max_deliveries
        self._maxlen = maxlen
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._redis.xgroup_create(self.stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def publish(self, event: dict[str, Any]) -> None:
        try:
            self._redis.xadd(self.stream, {"e": json.dumps(event)}, maxlen=self._maxlen, approximate=True)
        except redis.RedisError as exc:
            raise QueueUnavailable(f"redis: {type(exc).__name__}") from None

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def consume(self, handler: Handler, *, stop: Callable[[], bool], consumer: str = "worker") -> None:
        last_reclaim = 0.0
        with _Holding(self._redis, self.stream, self._group, consumer, self._reclaim_idle_ms / 3000) as held:
            while not stop():
                try:
                    self._ensure_group()
                    if time.monotonic() - last_reclaim > self._reclaim_idle_ms / 2000:
                        last_reclaim = time.monotonic()
                        self._reclaim(handler, consumer, held)
                    batches = cast(list[tuple[bytes, StreamMessages]], self._redis.xreadgroup(
                        self._group, consumer, {self.stream: ">"}, count=10, block=500))
                    for _stream, messages in batches or []:
                        self._handle_all(handler, messages, held)
                except redis.RedisError as exc:
                    # A message read but not acknowledged stays pending and is reclaimed later.
                    log.warning("redis unavailable (%s); retrying", type(exc).__name__)
                    held.drop_all()
                    self._group_ready = False
                    time.sleep(1.0)

    def _handle_all(self, handler: Handler, messages: StreamMessages, held: "_Holding") -> None:
        held.add(message_id for message_id, _ in messages)
        for message_id, fields in messages:
            if fields is not None:
                self._handle(handler, message_id, fields)
            held.drop(message_id)

    def _handle(self, handler: Handler, message_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            event = json.loads(fields[b"e"])
        except (KeyError, ValueError):
            log.error("dropping malformed message %s", message_id)
            self._redis.xack(self.stream, self._group, message_id)
            return
        try:
            handler(event)
        except HandledElsewhere as exc:
            log.info("message %s: %s; left pending", message_id, exc)
            return
        except Exception as exc:
            if is_poison(exc):
                log.exception("message %s (%s) cannot be handled; dead-lettered", message_id, event.get("kind"))
                self._dead_letter(message_id, fields, failure_reason(exc))
                METRICS.dead_letter("poison")
            else:
                log.exception("event handler failed for message %s (%s); left pending", message_id,
                              event.get("kind"))
            return
        self._redis.xack(self.stream, self._group, message_id)

    def _dead_letter(self, message_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        entry: dict[Any, Any] = {**fields, b"reason": reason.encode()}
        self._redis.xadd(self.dead_letters, entry)
        self._redis.xack(self.stream, self._group, message_id)

    def _reclaim(self, handler: Handler, consumer: str, held: "_Holding") -> None:
        _next, messages, *_ = self._redis.xautoclaim(
            self.stream, self._group, consumer, min_idle_time=self._reclaim_idle_ms, start_id="0-0", count=50)
        if not messages:
            return
        messages = cast(StreamMessages, messages)
        held.add(message_id for message_id, _ in messages)
        pending = cast(list[dict[str, Any]], self._redis.xpending_range(
            self.stream, self._group, min="-", max="+", count=500, consumername=consumer))
        counts: dict[bytes, int] = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        live: StreamMessages = []
        for message_id, fields in messages:
            if fields is not None and counts.get(message_id, 0) > self._max_deliveries:
                self._dead_letter(message_id, fields, f"still failing after {counts[message_id]} deliveries")
                METRICS.dead_letter("retries")
                log.error("moved message %s to %s after %d deliveries", message_id, self.dead_letters,
                          counts[message_id])
                held.drop(message_id)
            else:
                live.append((message_id, fields))
        for message_id, _fields in live:
            log.info("reclaimed pending message %s", message_id)
        self._handle_all(handler, live, held)

    def pending(self) -> int:
        try:
            self._ensure_group()
            return int(self._redis.xpending(self.stream, self._group)["pending"])
        except redis.RedisError:
            return -1

    def backlog(self) -> int:
        """Events not yet delivered to a worker plus those delivered and not yet acknowledged
        (-1 when Redis does not answer or cannot tell the undelivered count)."""
        try:
            self._ensure_group()
            groups = self._redis.xinfo_groups(self.stream)
        except redis.RedisError:
            return -1
        for group in groups:
            if group["name"].decode() == self._group:
                lag = group.get("lag")
                return -1 if lag is None else int(lag) + int(group["pending"])
        return -1


class _Holding:
    """The messages one consumer has read or claimed and not finished, kept fresh.

    Every `interval` seconds it claims them again for their consumer (XCLAIM JUSTID: their idle
    time restarts, their delivery count does not grow), so that no other consumer reclaims a
    message still queued in a batch or being handled, and handles it a second time.
    """

    def __init__(self, client: redis.Redis, stream: str, group: str, consumer: str, interval: float) -> None:
        self._client, self._stream, self._group, self._consumer = client, stream, group, consumer
        self._interval = max(interval, 0.05)
        self._ids: set[bytes] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"{threading.current_thread().name}-holding",
                                        daemon=True)

    def __enter__(self) -> "_Holding":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(5)

    def add(self, message_ids: Iterable[bytes]) -> None:
        with self._lock:
            self._ids.update(message_ids)

    def drop(self, message_id: bytes) -> None:
        with self._lock:
            self._ids.discard(message_id)

    def drop_all(self) -> None:
        with self._lock:
            self._ids.clear()

    def _keep(self) -> None:
        while not self._done.wait(self._interval):
            with self._lock:
                ids: list[Any] = list(self._ids)
            if not ids:
                continue
            try:
                self._client.xclaim(self._stream, self._group, self._consumer, min_idle_time=0,
                                    message_ids=ids, justid=True)
            except redis.RedisError as exc:
                log.debug("cannot keep %d messages fresh (%s)", len(ids), type(exc).__name__)


class RedisNoteLimiter:
    """Sliding one-minute windows of posted notes shared by every process through Redis: one for
    the bot, one per scope (a project), as in rules.feedback.NoteRateLimiter.

    GitLab.com allows 60 note creations a minute per user; with several workers posting as the
    same bot user, a per-process window is not enough. Fails open (allows) when Redis is down:
    a missed comment is worse than a rate-limit answer GitLab may give.
    """

    _SCRIPT = """
    for i, key in ipairs(KEYS) do
        redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1] - ARGV[2])
        if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then return 0 end
    end
    for _, key in ipairs(KEYS) do
        redis.call('ZADD', key, ARGV[1], ARGV[#KEYS + 3])
        redis.call('PEXPIRE', key, ARGV[2])
    end
    return 1
    """

    def __init__(self, url: str, prefix: str, per_minute: int = 50, window_seconds: float = 60.0,
                 per_scope: int = 20) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._key = f"{prefix}:notes"
        self._per_minute = per_minute
        self._per_scope = min(per_scope, per_minute)
        self._window_ms = int(window_seconds * 1000)
        self._script = self._redis.register_script(self._SCRIPT)
        self._sequence = itertools.count()

    def try_acquire(self, scope: str = "") -> bool:
        now_ms = int(time.time() * 1000)
        member = f"{now_ms}-{id(self)}-{next(self._sequence)}"
        keys, limits = [self._key], [self._per_minute]
        if scope:
            keys.append(f"{self._key}:{scope}")
            limits.append(self._per_scope)
        try:
            return bool(self._script(keys=keys, args=[now_ms, self._window_ms, *limits, member]))
        except redis.RedisError as exc:
            log.warning("note limiter unavailable (%s); allowing the note", type(exc).__name__)
            return True
