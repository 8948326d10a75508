"""Test-only entry point: `merge-assist` with failpoints. The production install has no such switch.

- `MERGE_ASSIST_FAILPOINT=after:<state>` SIGKILLs the process right after a chosen state is
  committed (e.g. `after:merging`, or `after:queued` for the moment an entry is created).
- `MERGE_ASSIST_FAILPOINT=barrier` with `MERGE_ASSIST_FAILPOINT_DIR=<dir>`: a test arms the barrier
  by writing `<state> <project_id>!<iid>` to `<dir>/armed`; the first process that commits that
  state for that MR renames it to `<dir>/reached` and waits, still holding whatever it holds (the
  lane's lease, a delivery's claim), until the test creates `<dir>/go`. This forces an
  interleaving: the test acts while the worker is parked between two steps.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
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


BARRIER_TIMEOUT_SECONDS = 60.0


def _barrier(directory: Path, entry: QueueEntry) -> None:
    armed = directory / "armed"
    try:
        wanted = armed.read_text().split()
    except FileNotFoundError:
        return
    if wanted != [entry.state.value, f"{entry.project_id}!{entry.mr_iid}"]:
        return
    try:
        armed.rename(directory / "reached")  # only one process parks
    except FileNotFoundError:
        return
    log.warning("failpoint: parked after %s of %s!%s", entry.state.value, entry.project_id, entry.mr_iid)
    go = directory / "go"
    deadline = time.monotonic() + BARRIER_TIMEOUT_SECONDS
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    go.unlink(missing_ok=True)
    log.warning("failpoint: released after %s of %s!%s", entry.state.value, entry.project_id, entry.mr_iid)


def install_barrier(directory: Path) -> None:
    add_entry, transition = QueueRepository.add_entry, QueueRepository.transition

    def parking_add_entry(self: QueueRepository, *args: Any, **kwargs: Any) -> QueueEntry:
        entry = add_entry(self, *args, **kwargs)
        _barrier(directory, entry)
        return entry

    def parking_transition(self: QueueRepository, *args: Any, **kwargs: Any) -> QueueEntry | Refused:
        moved = transition(self, *args, **kwargs)
        if not isinstance(moved, Refused):
            _barrier(directory, moved)
        return moved

    QueueRepository.add_entry = parking_add_entry  # type: ignore[method-assign]
    QueueRepository.transition = parking_transition  # type: ignore[method-assign]


def install(failpoint: str) -> None:
    if failpoint == "barrier":
        install_barrier(Path(os.environ["MERGE_ASSIST_FAILPOINT_DIR"]))
        return
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
