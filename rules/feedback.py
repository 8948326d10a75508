"""What the bot says on a merge request, kept within GitLab's note rate limit.

GitLab.com allows 60 note creations a minute. Acknowledgements are emoji; a comment is posted
when an MR waits behind others, merges or fails. Under load, "queued" comments are dropped
(the emoji already said the command was taken) while outcome comments are scheduled for a free
slot (rules.outbox); no thread ever waits for the limiter.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Protocol

from merge_assist.rules.errors import GitLabError
from merge_assist.rules.outbox import NoteOutbox, limit_scope
from merge_assist.rules.ports import GitLabPort

log = logging.getLogger("merge_assist.feedback")

ACCEPTED_EMOJI = "eyes"


class NoteRateLimiter:
    """Sliding one-minute windows for the notes this process posts: one shared, one per scope.

    The shared window keeps the bot under GitLab's limit; the per-scope one (a project) keeps a
    single busy project from using all of it.
    """

    def __init__(self, per_minute: int = 50, window_seconds: float = 60.0, per_scope: int = 20) -> None:
        self._limits = {"": per_minute}
        self._per_scope = min(per_scope, per_minute)
        self._window = window_seconds
        self._sent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def try_acquire(self, scope: str = "") -> bool:
        now = time.monotonic()
        windows = ("", scope) if scope else ("",)
        with self._lock:
            for name in windows:
                sent = self._sent[name]
                while sent and now - sent[0] >= self._window:
                    sent.popleft()
                if len(sent) >= self._limits.get(name, self._per_scope):
                    return False
            for name in windows:
                self._sent[name].append(now)
            return True


class NoteLimiter(Protocol):
    def try_acquire(self, scope: str = "") -> bool:
        """Take a slot in the shared window and in `scope`'s; False, at once, when either is full."""


class Feedback:
    def __init__(self, gitlab: GitLabPort, limiter: NoteLimiter | None = None, *,
                 retry_seconds: float = 1.0) -> None:
        self._gitlab = gitlab
        self._limiter = limiter or NoteRateLimiter()
        self.outbox = NoteOutbox(gitlab.post_note, self._limiter.try_acquire, retry_seconds=retry_seconds)

    def acknowledge(self, project_id: int, iid: int, note_id: int | None) -> None:
        self._emoji(project_id, iid, note_id, ACCEPTED_EMOJI)

    def _emoji(self, project_id: int, iid: int, note_id: int | None, name: str) -> None:
        try:
            self._gitlab.award_emoji(project_id, iid, note_id, name)
        except GitLabError as exc:
            log.warning("could not award :%s: on %s!%s: %s", name, project_id, iid, exc)

    def comment(self, project_id: int, iid: int, body: str, *, important: bool = True) -> bool:
        """Post a comment now (True) or, at the rate limit, never wait: an important one is
        scheduled for the outbox's drain, an unimportant one skipped (False either way)."""
        # Behind notes this MR already has waiting, so that its comments keep their order.
        if self.outbox.has_pending(project_id, iid) or not self._limiter.try_acquire(limit_scope(project_id)):
            if important:
                self.outbox.schedule(project_id, iid, body)
            else:
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
