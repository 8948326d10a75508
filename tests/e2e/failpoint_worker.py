"""Test-only entry point: `merge-assist` with a failpoint that SIGKILLs the process right after a
chosen state is committed (`MERGE_ASSIST_FAILPOINT=after:<state>`, e.g. `after:merging`, or
`after:queued` for the moment an entry is created). The production install has no such switch."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from merge_assist.bot.cli import main
from merge_assist.rules.model import EntryState, QueueEntry
from merge_assist.rules.ports import Refused
from merge_assist.storage.queue import QueueRepository

log = logging.getLogger("merge_assist.failpoints")


def _crash(entry: QueueEntry, state: EntryState) -> None:
    log.warning("failpoint: killing worker after %s of %s!%s", state.value, entry.project_id, entry.mr_iid)
    logging.shutdown()
    os.kill(os.getpid(), signal.SIGKILL)


def install(failpoint: str) -> None:
    kind, _, name = failpoint.partition(":")
    if kind != "after" or name not in {s.value for s in EntryState}:
        raise SystemExit(f"MERGE_ASSIST_FAILPOINT: expected after:<state>, got {failpoint!r}")
    state = EntryState(name)
    add_entry, transition = QueueRepository.add_entry, QueueRepository.transition

    def crashing_add_entry(self: QueueRepository, *args: Any, **kwargs: Any) -> QueueEntry:
        entry = add_entry(self, *args, **kwargs)
        if state is EntryState.QUEUED:
            _crash(entry, state)
        return entry

    def crashing_transition(self: QueueRepository, entry_id: int, expected: EntryState, to: EntryState,
                            *args: Any, **kwargs: Any) -> QueueEntry | Refused:
        moved = transition(self, entry_id, expected, to, *args, **kwargs)
        if to is state and not isinstance(moved, Refused):
            _crash(moved, state)
        return moved

    QueueRepository.add_entry = crashing_add_entry  # type: ignore[method-assign]
    QueueRepository.transition = crashing_transition  # type: ignore[method-assign]


if __name__ == "__main__":
    install(os.environ["MERGE_ASSIST_FAILPOINT"])
    sys.exit(main(sys.argv[1:]))
