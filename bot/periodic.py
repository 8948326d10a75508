"""A daemon thread that calls a function every `interval` seconds until stopped."""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("merge_assist.periodic")


class PeriodicTask:
    def __init__(self, name: str, interval: float, task: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval
        self._task = task
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name=f"merge-assist-{self._name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._task()
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("%s: periodic pass failed", self._name)
