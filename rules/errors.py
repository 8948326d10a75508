"""Errors the merge flow understands, raised by the GitLab port.

Each maps a GitLab answer to what the merge flow does with it, so that the core never looks
at HTTP status codes of a particular client library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merge_assist.rules.model import QueueEntry


class GitLabError(Exception):
    """GitLab answered with an error the merge flow has no special handling for."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"GitLab answered {status}: {message}" if status else message)
        self.status = status
        self.message = message


class NotFound(GitLabError):
    """404: the object (or the membership) does not exist."""


class HeadMoved(GitLabError):
    """409 on merge: the source branch head is not the SHA we tested."""


class NotMergeable(GitLabError):
    """405 or 422 on merge: GitLab will not merge it now; re-validate."""


class TransientGitLabError(GitLabError):
    """5xx, timeouts and connection errors: try again later."""


class RebaseRefused(GitLabError):
    """403/409 on rebase: GitLab would not start the rebase."""


class LeaseLost(RuntimeError):
    """The lane's lease moved to another holder; this worker must stop acting on the lane."""


class ServiceFailure(RuntimeError):
    """The bot's own store (or another part of it) failed while a command ran. Not a plugin's bug
    and not a refusal: the event is retried later instead of being answered."""


class HandledElsewhere(RuntimeError):
    """Another handler holds this event right now and has not finished it. The queue keeps the
    event and offers it again later: acknowledging it now would lose it if that handler fails."""


class IllegalTransition(ValueError):
    """A move that the lane's transition table (rules/lane_machine.py) does not allow: a bug."""


class AlreadyQueuedError(RuntimeError):
    """The MR already has an active queue entry (two deliveries raced)."""

    def __init__(self, entry: QueueEntry) -> None:
        super().__init__("already queued")
        self.entry = entry
