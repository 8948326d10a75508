"""Simulated time and a scheduler of timed events.

Pipelines take simulated minutes; tests must not wait for them. A ``SimClock`` is
either *virtual* (time only moves when a test calls ``advance``; due events run in
the caller's thread, in time order, so outcomes are deterministic) or *real scaled*
(``scale=600`` means one real second is ten simulated minutes; a background thread
fires due events).
"""

from __future__ import annotations

import heapq
import logging
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Callback = Callable[[], None]


@dataclass(order=True)
class _Event:
    due: float
    seq: int
    callback: Callback = field(compare=False)


class SimClock:
    """Simulated wall clock (epoch seconds) plus an event scheduler."""

    def __init__(self, *, virtual: bool, scale: float = 1.0, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.virtual = virtual
        self.scale = scale
        self._origin_sim = time.time() if start is None else start
        self._origin_real = time.monotonic()
        self._virtual_now = self._origin_sim
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @classmethod
    def virtual_clock(cls, start: float | None = None) -> SimClock:
        """Time stands still until ``advance`` is called."""
        return cls(virtual=True, start=start)

    @classmethod
    def real_time(cls, scale: float = 1.0) -> SimClock:
        """Time flows with the wall clock, ``scale`` times faster."""
        return cls(virtual=False, scale=scale)

    def now(self) -> float:
        if self.virtual:
            with self._cond:
                return self._virtual_now
        return self._origin_sim + (time.monotonic() - self._origin_real) * self.scale

    def call_later(self, delay: float, callback: Callback) -> None:
        """Run ``callback`` once ``delay`` simulated seconds have passed."""
        with self._cond:
            due = self.now() + max(delay, 0.0)
            heapq.heappush(self._events, _Event(due, next(self._seq), callback))
            self._cond.notify_all()

    def next_due(self) -> float | None:
        """When the next scheduled event is due (None when nothing is scheduled), so that a driver
        of a virtual clock can jump from event to event instead of stepping."""
        with self._cond:
            return self._events[0].due if self._events else None

    def advance(self, seconds: float) -> None:
        """Virtual clocks only: move time forward, firing due events in order."""
        if not self.virtual:
            raise RuntimeError("advance() needs a virtual clock")
        with self._cond:
            target = self._virtual_now + seconds
        while True:
            with self._cond:
                if not self._events or self._events[0].due > target:
                    self._virtual_now = max(self._virtual_now, target)
                    return
                event = heapq.heappop(self._events)
                self._virtual_now = max(self._virtual_now, event.due)
            event.callback()

    def run_until_idle(self, max_seconds: float = 365 * 24 * 3600) -> None:
        """Virtual clocks only: advance until no events remain (bounded)."""
        limit = self.now() + max_seconds
        while True:
            with self._cond:
                if not self._events or self._events[0].due > limit:
                    return
                step = self._events[0].due - self._virtual_now
            self.advance(max(step, 0.0))

    def start(self) -> None:
        """Real clocks fire events from a daemon thread; virtual clocks need none."""
        if self.virtual or self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="sim-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if not self._events:
                    self._cond.wait()
                    continue
                wait_sim = self._events[0].due - self.now()
                if wait_sim > 0:
                    self._cond.wait(timeout=wait_sim / self.scale)
                    continue
                event = heapq.heappop(self._events)
            try:
                event.callback()
            except Exception:  # noqa: BLE001 - a broken callback must not stop time
                logging.getLogger(__name__).exception("scheduled event failed")
