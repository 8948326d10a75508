"""What the bot says on a merge request, kept within GitLab's note rate limit.

GitLab.com allows 60 note creations a minute. Acknowledgements are emoji; a comment is posted
when an MR waits behind others, merges or fails. Under load, "queued" comments are dropped
(the emoji already said the command was taken) while outcome comments wait for a free slot.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Protocol

from merge_assist.rules.errors import GitLabError
from merge_assist.rules.ports import GitLabPort

log = logging.getLogger("merge_assist.feedback")

ACCEPTED_EMOJI = "eyes"


class PollingLimiter:
    """`acquire` in terms of `try_acquire`, for limiters that cannot wait on their own."""

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
        return True


class NoteRateLimiter(PollingLimiter):
    """A sliding one-minute window shared by every note this process posts."""

    def __init__(self, per_minute: int = 50, window_seconds: float = 60.0) -> None:
        self._per_minute = per_minute
        self._window = window_seconds
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._sent and now - self._sent[0] >= self._window:
                self._sent.popleft()
            if len(self._sent) >= self._per_minute:
                return False
            self._sent.append(now)
            return True


class NoteLimiter(Protocol):
    def try_acquire(self) -> bool: ...

    def acquire(self, timeout: float) -> bool: ...


class Feedback:
    def __init__(self, gitlab: GitLabPort, limiter: NoteLimiter | None = None) -> None:
        self._gitlab = gitlab
        self._limiter = limiter or NoteRateLimiter()

    def acknowledge(self, project_id: int, iid: int, note_id: int | None) -> None:
        self._emoji(project_id, iid, note_id, ACCEPTED_EMOJI)

    def _emoji(self, project_id: int, iid: int, note_id: int | None, name: str) -> None:
        try:
            self._gitlab.award_emoji(project_id, iid, note_id, name)
        except GitLabError as exc:
            log.warning("could not award :%s: on %s!%s: %s", name, project_id, iid, exc)

    def comment(self, project_id: int, iid: int, body: str, *, important: bool = True) -> bool:
        """Post a comment; unimportant ones are skipped when the rate limit is reached."""
        allowed = self._limiter.acquire(timeout=30.0) if important else self._limiter.try_acquire()
        if not allowed:
            log.info("note on %s!%s skipped: note rate limit reached", project_id, iid)
            return False
        try:
            self._gitlab.post_note(project_id, iid, body)
            return True
        except GitLabError as exc:
            log.warning("could not comment on %s!%s: %s", project_id, iid, exc)
            return False

    def queued(self, project_id: int, iid: int, position: int, lane_size: int, target_branch: str) -> None:
        if position <= 1:
            return  # It is being worked on now; the acknowledgement emoji says enough.
        self.comment(project_id, iid,
                     f"Queued for `{target_branch}`: position {position} of {lane_size}. "
                     "I will comment again when it merges or if it cannot.", important=False)

    def merged(self, project_id: int, iid: int, sha: str | None, target_branch: str) -> None:
        short = f" as {sha[:12]}" if sha else ""
        self.comment(project_id, iid, f":rocket: Merged into `{target_branch}`{short}.")

    def failed(self, project_id: int, iid: int, reason: str) -> None:
        self.comment(project_id, iid,
                     f":x: I could not merge this merge request: {reason}\n\n"
                     "When it is fixed, comment `/merge-assist retry` to queue it again.")
