"""Which handler failures a retry can cure, and which mark the event itself as poison.

A database, Redis or GitLab outage (connection errors, timeouts, 5xx, 429) passes: the event is
retried. A malformed event fails the same way every time (a missing key, a wrong type, an id
PostgreSQL cannot store, a 4xx from GitLab), so retrying it only delays the queue and fills the
log: it is dead-lettered after its first failure, with the reason.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from merge_assist.rules.errors import GitLabError, TransientGitLabError

_POISON = (LookupError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError,
           UnicodeError)
MAX_REASON_CHARS = 300


def is_poison(error: BaseException) -> bool:
    """Whether retrying the event that raised `error` cannot succeed."""
    if isinstance(error, TransientGitLabError):
        return False
    if isinstance(error, GitLabError):
        return error.status is not None and 400 <= error.status < 500 and error.status != 429
    if isinstance(error, sa_exc.DataError):  # e.g. an integer out of the column's range
        return True
    if isinstance(error, sa_exc.StatementError) and not isinstance(error, sa_exc.DBAPIError):
        return error.orig is not None and is_poison(error.orig)  # raised binding a parameter
    if isinstance(error, (sa_exc.SQLAlchemyError, OSError)):
        return False
    return isinstance(error, _POISON)


def failure_reason(error: BaseException) -> str:
    """One line for the dead-letter record: the exception's type and (shortened) message."""
    text = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
    return text[:MAX_REASON_CHARS]
