"""Failpoints for crash tests: kill this process right after a chosen state is committed.

Set `MERGE_ASSIST_FAILPOINT=after:<state>` (e.g. `after:merging`, or `after:queued` for the moment
an entry is created). Never set in production; the crash tests use it to stop a worker at every
point of the state machine deterministically.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from merge_assist.rules.model import EntryState, Priority, QueueEntry

log = logging.getLogger("merge_assist.failpoints")


class CrashingQueue:
    """Wraps the queue repository; SIGKILLs the process after committing the chosen state."""

    def __init__(self, inner: Any, failpoint: str) -> None:
        kind, _, state = failpoint.partition(":")
        if kind != "after" or state not in {s.value for s in EntryState}:
            raise ValueError(f"MERGE_ASSIST_FAILPOINT: expected after:<state>, got {failpoint!r}")
        self._inner = inner
        self._state = EntryState(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _crash(self, entry: QueueEntry) -> None:
        log.warning("failpoint: killing worker after %s of %s!%s", self._state.value, entry.project_id, entry.mr_iid)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

    def add_entry(self, project_id: int, iid: int, target_branch: str, priority: Priority, requested_by: str,
                  note_id: int | None = None, **kwargs: Any) -> QueueEntry:
        entry: QueueEntry = self._inner.add_entry(project_id, iid, target_branch, priority, requested_by, note_id,
                                                  **kwargs)
        if self._state is EntryState.QUEUED:
            self._crash(entry)
        return entry

    def transition(self, entry_id: int, to: EntryState, reason: str = "", **kwargs: Any) -> QueueEntry:
        entry: QueueEntry = self._inner.transition(entry_id, to, reason, **kwargs)
        if to is self._state:
            self._crash(entry)
        return entry
