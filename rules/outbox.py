"""Notes held back by the rate limit, posted later by a background drain instead of waited for.

A worker thread never sleeps for the limiter: the note is scheduled and the thread goes on with
its lane. The drain serves merge requests in turn (one note each per pass), and each merge
request may hold only a few notes back, so one noisy merge request delays nobody else's.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable

from merge_assist.rules.errors import GitLabError

log = logging.getLogger("merge_assist.feedback")

MergeRequestKey = tuple[int, int]
PostNote = Callable[[int, int, str], object]
TryAcquire = Callable[[str], bool]


def limit_scope(project_id: int) -> str:
    """The limiter's per-project scope: a project may use only part of the shared budget."""
    return f"project:{project_id}"


class NoteOutbox:
    def __init__(self, post: PostNote, try_acquire: TryAcquire, *, per_merge_request: int = 5,
                 retry_seconds: float = 1.0) -> None:
        self._post = post
        self._try_acquire = try_acquire
        self._per_merge_request = per_merge_request
        self._retry_seconds = retry_seconds
        self._pending: collections.OrderedDict[MergeRequestKey, collections.deque[str]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._drainer: threading.Thread | None = None
        self._stopping = threading.Event()

    def has_pending(self, project_id: int, iid: int) -> bool:
        with self._lock:
            return (project_id, iid) in self._pending

    def pending(self) -> int:
        with self._lock:
            return sum(len(notes) for notes in self._pending.values())

    def schedule(self, project_id: int, iid: int, body: str) -> bool:
        """Hold the note for the drain; False (dropped) when this MR already has enough held back."""
        with self._lock:
            notes = self._pending.setdefault((project_id, iid), collections.deque())
            if len(notes) >= self._per_merge_request:
                log.warning("note on %s!%s dropped: %d notes already wait for the rate limit",
                            project_id, iid, len(notes))
                return False
            notes.append(body)
        self._ensure_drainer()
        return True

    def drain(self) -> int:
        """Post what the limiter allows now, one note per merge request in turn; returns how many."""
        posted, progress = 0, True
        while progress:
            progress = False
            for key in self._keys():
                if not self._try_acquire(limit_scope(key[0])):
                    continue
                body = self._pop(key)
                if body is None:
                    continue
                progress = True
                posted += 1
                try:
                    self._post(key[0], key[1], body)
                except GitLabError as exc:
                    log.warning("could not comment on %s!%s: %s", key[0], key[1], exc)
        return posted

    def _keys(self) -> list[MergeRequestKey]:
        with self._lock:
            return list(self._pending)

    def _pop(self, key: MergeRequestKey) -> str | None:
        with self._lock:
            notes = self._pending.get(key)
            if not notes:
                return None
            body = notes.popleft()
            if not notes:
                del self._pending[key]
            else:
                self._pending.move_to_end(key)  # the next pass serves the others first
            return body

    def _ensure_drainer(self) -> None:
        with self._lock:
            if self._drainer is not None and self._drainer.is_alive():
                return
            self._drainer = threading.Thread(target=self._drain_loop, name="merge-assist-notes", daemon=True)
            self._drainer.start()

    def _drain_loop(self) -> None:
        """Runs while notes are held back, then ends; the next `schedule` starts it again."""
        while not self._stopping.wait(self._retry_seconds):
            try:
                self.drain()
            except Exception:  # a limiter or GitLab client bug must not end the drain for good
                log.exception("draining held-back notes failed")
            with self._lock:
                if not self._pending:
                    self._drainer = None
                    return

    def stop(self) -> None:
        self._stopping.set()
