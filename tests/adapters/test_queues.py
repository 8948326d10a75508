"""Queue backends: in-process and Redis Streams (real server, unique key prefix)."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from merge_assist.adapters.queues import InProcessQueue, QueueUnavailable, RedisStreamQueue
from tests.helpers import wait_for


def run_consumer(queue, handler, consumer="c1"):
    stop = threading.Event()
    thread = threading.Thread(target=queue.consume, args=(handler,), kwargs={"stop": stop.is_set, "consumer": consumer},
                              daemon=True)
    thread.start()
    return stop, thread


def test_in_process_queue_retries_a_failing_handler_with_backoff():
    queue = InProcessQueue(max_attempts=3, first_delay=0.05)
    calls = []

    def handler(event):
        calls.append(event["n"])
        if len(calls) < 3:
            raise RuntimeError("flaky")

    queue.publish({"n": 1})
    stop, thread = run_consumer(queue, handler)
    wait_for(lambda: len(calls) == 3, timeout=5)
    stop.set()
    thread.join(2)
    assert calls == [1, 1, 1]
    assert queue.pending() == 0


@pytest.mark.parametrize("backend", ["in-process", "redis"])
def test_backlog_counts_queued_in_hand_and_retrying_events_until_they_are_done(backend, redis_url, redis_prefix):
    queue = (InProcessQueue(first_delay=0.3) if backend == "in-process"
             else RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=300))
    in_hand, release = threading.Event(), threading.Event()
    attempts = []

    def handler(event):
        attempts.append(event["n"])
        if event["n"] == 1 and attempts.count(1) == 1:
            raise RuntimeError("fails once")
        if event["n"] == 2:
            in_hand.set()
            release.wait(5)

    for n in (1, 2, 3):
        queue.publish({"n": n})
    assert queue.backlog() == 3
    stop, thread = run_consumer(queue, handler)
    try:
        assert in_hand.wait(5)
        assert queue.backlog() == 3  # 1 failed and waits for its retry, 2 is in hand, 3 is behind it
        release.set()
        wait_for(lambda: queue.backlog() == 0, timeout=10)
        assert sorted(attempts) == [1, 1, 2, 3]  # the retry was counted until it was done
    finally:
        release.set()
        stop.set()
        thread.join(3)


def test_redis_stream_delivers_and_acknowledges(redis_url, redis_prefix):
    queue = RedisStreamQueue(redis_url, redis_prefix)
    seen = []
    for n in range(5):
        queue.publish({"n": n})
    stop, thread = run_consumer(queue, lambda e: seen.append(e["n"]))
    wait_for(lambda: len(seen) == 5, timeout=5)
    stop.set()
    thread.join(3)
    assert seen == [0, 1, 2, 3, 4]
    assert queue.pending() == 0


def test_redis_pending_message_of_a_dead_consumer_is_reclaimed(redis_url, redis_prefix):
    queue = RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=200)

    def dies(event):
        raise RuntimeError("consumer crashed before acknowledging")

    queue.publish({"n": 42})
    stop, thread = run_consumer(queue, dies, consumer="dead")
    wait_for(lambda: queue.pending() == 1, timeout=5)
    stop.set()
    thread.join(3)
    survivor = RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=200)
    seen = []
    stop, thread = run_consumer(survivor, lambda e: seen.append(e["n"]), consumer="alive")
    wait_for(lambda: seen == [42], timeout=5)
    wait_for(lambda: survivor.pending() == 0, timeout=5)
    stop.set()
    thread.join(3)


def test_redis_messages_a_live_consumer_holds_are_not_reclaimed(redis_url, redis_prefix):
    """Each handler runs longer than the reclaim time, and the batch waits longer still: another
    consumer must not take them over while their holder lives (it would handle them twice)."""
    slow, other = (RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=200) for _ in range(2))
    handled: list[tuple[str, int]] = []
    for n in range(3):
        slow.publish({"n": n})

    def handle_slowly(event):
        handled.append(("slow", event["n"]))
        time.sleep(0.5)

    stop_slow, slow_thread = run_consumer(slow, handle_slowly, consumer="slow")
    wait_for(lambda: handled, timeout=5)
    stop_other, other_thread = run_consumer(other, lambda e: handled.append(("other", e["n"])), consumer="other")
    wait_for(lambda: slow.pending() == 0, timeout=10)
    for stop, thread in ((stop_slow, slow_thread), (stop_other, other_thread)):
        stop.set()
        thread.join(3)
    assert handled == [("slow", 0), ("slow", 1), ("slow", 2)]


def test_redis_poison_message_goes_to_dead_letters(redis_url, redis_prefix):
    queue = RedisStreamQueue(redis_url, redis_prefix, reclaim_idle_ms=50, max_deliveries=2)
    attempts = []

    def always_fails(event):
        attempts.append(event)
        raise RuntimeError("poison")

    queue.publish({"n": "poison"})
    stop, thread = run_consumer(queue, always_fails)
    client = redis.Redis.from_url(redis_url)
    wait_for(lambda: client.xlen(queue.dead_letters) == 1, timeout=10)
    stop.set()
    thread.join(3)
    assert len(attempts) >= 2
    assert queue.pending() == 0


def test_redis_down_raises_a_clear_error():
    queue = RedisStreamQueue("redis://127.0.0.1:1/0", "nowhere")
    with pytest.raises(QueueUnavailable, match="redis"):
        queue.publish({"n": 1})
    assert queue.ping() is False
    assert queue.pending() == -1
    assert queue.backlog() == -1


def test_in_process_queue_gives_up_after_max_attempts():
    queue = InProcessQueue(max_attempts=2, first_delay=0.01)
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("database gone")

    queue.publish({"n": 1})
    stop, thread = run_consumer(queue, broken)
    wait_for(lambda: len(calls) == 2 and queue.pending() == 0, timeout=5)
    stop.set()
    thread.join(2)
    assert len(calls) == 2


def test_note_limit_is_shared_by_every_process(redis_url, redis_prefix):
    from merge_assist.adapters.queues import RedisNoteLimiter

    first = RedisNoteLimiter(redis_url, redis_prefix, per_minute=5)
    second = RedisNoteLimiter(redis_url, redis_prefix, per_minute=5)
    granted = [limiter.try_acquire() for limiter in (first, second) * 4]
    assert granted.count(True) == 5 and granted[5:] == [False, False, False]
    short = RedisNoteLimiter(redis_url, redis_prefix + "-short", per_minute=1, window_seconds=0.2)
    assert short.try_acquire() and not short.try_acquire()
    assert wait_for(lambda: short.try_acquire(), timeout=2.0)


def test_note_limiter_fails_open_without_redis():
    from merge_assist.adapters.queues import RedisNoteLimiter

    assert RedisNoteLimiter("redis://127.0.0.1:1/0", "nowhere").try_acquire() is True


def test_in_process_note_limiter_window():
    from merge_assist.rules.feedback import NoteRateLimiter

    limiter = NoteRateLimiter(per_minute=2, window_seconds=0.2)
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    assert wait_for(lambda: limiter.try_acquire(), timeout=2.0)


def test_redis_note_limiter_keeps_a_window_per_scope(redis_url, redis_prefix):
    from merge_assist.adapters.queues import RedisNoteLimiter

    first = RedisNoteLimiter(redis_url, redis_prefix, per_minute=5, per_scope=2)
    second = RedisNoteLimiter(redis_url, redis_prefix, per_minute=5, per_scope=2)
    assert [limiter.try_acquire("project:1") for limiter in (first, second, first)] == [True, True, False]
    assert [second.try_acquire("project:2") for _ in range(3)] == [True, True, False]
    assert first.try_acquire("project:3") is True
    assert first.try_acquire("project:4") is False  # the shared window (5) is full
