"""Worker threads: consume events, drive lanes, and re-check waiting lanes on a slow timer."""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable

from merge_assist.rules.events import current_event_id, event_scope
from merge_assist.rules.flow import FlowDeps, LaneDriver, TrainDriver
from merge_assist.rules.model import LaneKey
from merge_assist.rules.ports import EventQueue

log = logging.getLogger("merge_assist.worker")

EventHandlerFn = Callable[[dict[str, Any]], None]
RECHECK_CAP_SECONDS = 1800.0
HOUSEKEEPING_SECONDS = 3600.0


def holder_id(thread_name: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{thread_name}:{uuid.uuid4().hex[:8]}"


class LaneScheduler:
    """Drives lanes now or later; each thread has its own LaneDriver (its own lease holder id)."""

    def __init__(self, deps: FlowDeps, lease_seconds: float, recheck_seconds: float = 300.0,
                 train: TrainDriver | None = None) -> None:
        self._deps = deps
        self._train = train
        self._lease_seconds = lease_seconds
        self._recheck_base = recheck_seconds
        self._last_driven: dict[LaneKey, float] = {}
        self._recheck_after: dict[LaneKey, float] = {}
        self._local = threading.local()
        self._due: list[tuple[float, str, LaneKey]] = []
        self._running: set[LaneKey] = set()
        self._dirty: set[LaneKey] = set()
        self._wake_events: dict[LaneKey, str | None] = {}
        self._lock = threading.Lock()

    def _driver(self) -> LaneDriver:
        driver = getattr(self._local, "driver", None)
        if driver is None:
            driver = LaneDriver(self._deps, holder_id(threading.current_thread().name), self._lease_seconds,
                                self._train)
            self._local.driver = driver
        return driver

    def drive(self, lane: LaneKey, *, recheck: bool = False) -> None:
        """Drive the lane now, unless a thread of this process is already on it.

        A burst of webhooks for one lane then costs one extra pass instead of one pass each:
        the thread on the lane is told to look again when it finishes.
        """
        with self._lock:
            self._last_driven[lane] = time.monotonic()
            # A quiet lane is re-checked less and less often; any event resets that.
            current = self._recheck_after.get(lane, self._recheck_base)
            self._recheck_after[lane] = min(current * 2, RECHECK_CAP_SECONDS) if recheck else self._recheck_base
            if lane in self._running:
                self._dirty.add(lane)
                return
            self._running.add(lane)
        try:
            while True:
                self._drive_once(lane, poll=recheck)
                recheck = False
                with self._lock:
                    if lane not in self._dirty:
                        self._running.discard(lane)
                        return
                    self._dirty.discard(lane)
        except BaseException:
            with self._lock:
                self._running.discard(lane)
                self._dirty.discard(lane)
            raise

    def _drive_once(self, lane: LaneKey, *, poll: bool = False) -> None:
        try:
            wake_after = self._driver().drive(lane, poll=poll)
        except Exception:
            log.exception("lane %s: driving failed; retrying in 30s", lane)
            wake_after = 30.0
        if wake_after is not None:
            self.later(lane, wake_after)

    def job_failed(self, lane: LaneKey, sha: str, job_name: str) -> None:
        try:
            self._driver().job_failed(lane, sha, job_name)
        except Exception:
            log.exception("lane %s: handling a failed job failed; the pipeline's end will decide", lane)
        self.drive(lane)

    def car_pipeline(self, lane: LaneKey, sha: str, pipeline_id: int, status: str, web_url: str) -> None:
        try:
            self._driver().car_pipeline(lane, sha, pipeline_id, status, web_url)
        except Exception:
            log.exception("lane %s: recording pipeline #%s failed; the re-check will ask GitLab", lane, pipeline_id)
        self.drive(lane)

    def due_for_recheck(self, lanes: list[LaneKey]) -> list[LaneKey]:
        now = time.monotonic()
        with self._lock:
            return [lane for lane in lanes if now - self._last_driven.get(lane, float("-inf"))
                    >= self._recheck_after.get(lane, self._recheck_base)]

    def later(self, lane: LaneKey, seconds: float) -> None:
        with self._lock:
            self._wake_events[lane] = current_event_id()
            heapq.heappush(self._due, (time.monotonic() + seconds, str(lane), lane))

    def wake_event(self, lane: LaneKey) -> str | None:
        """The event id in scope when the lane's latest wake-up was scheduled (for the logs)."""
        with self._lock:
            return self._wake_events.get(lane)

    def pop_due(self) -> list[LaneKey]:
        now, due = time.monotonic(), []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                due.append(heapq.heappop(self._due)[2])
        return list(dict.fromkeys(due))


class Worker:
    """`consumers` threads on the event queue plus one timer thread."""

    def __init__(self, queue: EventQueue, handler: EventHandlerFn, scheduler: LaneScheduler,
                 waiting_lanes: Callable[[], list[LaneKey]], *, consumers: int = 2,
                 recheck_seconds: float = 300.0, housekeeping: Callable[[], None] | None = None) -> None:
        self._queue = queue
        self._handler = handler
        self._scheduler = scheduler
        self._waiting_lanes = waiting_lanes
        self._consumers = consumers
        self._recheck = recheck_seconds
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_recheck = 0.0
        self._housekeeping = housekeeping
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS

    def start(self) -> None:
        self._stopping.clear()
        for index in range(self._consumers):
            self._spawn(f"consumer-{index}", self._consume)
        self._spawn("timer", self._timer)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"merge-assist-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _consume(self) -> None:
        name = threading.current_thread().name
        self._queue.consume(self._handler, stop=self._stopping.is_set, consumer=holder_id(name))

    def recheck_now(self) -> None:
        """Look at lanes with queued work that nothing woke for a while (lost webhooks, freezes).

        The first re-check comes `recheck_seconds` after a lane was last driven, then the gap
        doubles up to 30 minutes while the lane stays quiet, so a long pipeline costs a few
        GitLab reads, not one per interval.
        """
        for lane in self._scheduler.due_for_recheck(self._waiting_lanes()):
            with event_scope(f"recheck:{uuid.uuid4().hex[:12]}"):
                self._scheduler.drive(lane, recheck=True)

    def _timer(self) -> None:
        tick = min(self._recheck / 4, 5.0)
        self._next_recheck = time.monotonic() + tick
        while not self._stopping.wait(0.2):
            try:
                for lane in self._scheduler.pop_due():
                    with event_scope(self._scheduler.wake_event(lane)):
                        self._scheduler.drive(lane)
                if time.monotonic() >= self._next_recheck:
                    self._next_recheck = time.monotonic() + tick
                    self.recheck_now()
                if self._housekeeping is not None and time.monotonic() >= self._next_housekeeping:
                    self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                    self._housekeeping()
            except Exception:
                log.exception("timer pass failed")

    def alive(self) -> bool:
        """Every consumer and the timer thread still runs (the liveness probe asks this)."""
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        finally:
            self.stop()
