"""Sign-in sessions (refresh token rotation, revocation) and sign-in failure counts.

Both live in the database so that every `serve` replica sees the same revocations and the same
throttling: a refresh token revoked through one replica is refused by all of them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select, update

from merge_assist.storage.account_models import AuthSession, SignInFailure
from merge_assist.storage.db import Database
from merge_assist.storage.models import User
from merge_assist.storage.types import utcnow


@dataclass(frozen=True)
class SessionUser:
    """The user behind a live session."""

    session_id: str
    user_id: int
    username: str
    gitlab_user_id: int | None


class RefreshRefused(Exception):
    """The refresh token is unknown, revoked, expired, replayed, or its user is inactive."""


def new_token_id() -> str:
    return secrets.token_urlsafe(24)


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, user_id: int, lifetime: timedelta) -> tuple[str, str]:
        """A new session for the user: (session id, id of its first refresh token)."""
        session_id, refresh_jti = new_token_id(), new_token_id()
        with self._db.session() as session:
            session.add(AuthSession(id=session_id, user_id=user_id, refresh_jti=refresh_jti,
                                    expires_at=utcnow() + lifetime))
        return session_id, refresh_jti

    def live_user(self, session_id: str, user_id: int) -> SessionUser | None:
        """The session's user if the session is live and the user active (checked on every request,
        so deactivation and sign-out stop access tokens at once)."""
        with self._db.session() as session:
            row = session.execute(
                select(User.username, User.gitlab_user_id).join(AuthSession, AuthSession.user_id == User.id).where(
                    AuthSession.id == session_id, AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > utcnow(), User.active.is_(True))).first()
        return SessionUser(session_id, user_id, row[0], row[1]) if row else None

    def rotate(self, session_id: str, user_id: int, presented_jti: str) -> tuple[SessionUser, str]:
        """Swap the session's refresh token for a new one; a replayed token revokes the session."""
        with self._db.session() as session:
            row = session.get(AuthSession, session_id, with_for_update=True)
            if row is None or row.user_id != user_id or row.revoked_at is not None or row.expires_at <= utcnow():
                raise RefreshRefused("the session has ended; sign in again")
            if not secrets.compare_digest(row.refresh_jti, presented_jti):
                row.revoked_at = utcnow()
                session.commit()
                raise RefreshRefused("this refresh token was already used; the session is now revoked")
            user = session.get(User, user_id)
            if user is None or not user.active:
                raise RefreshRefused("the account is deactivated")
            row.refresh_jti = new_token_id()
            return SessionUser(session_id, user_id, user.username, user.gitlab_user_id), row.refresh_jti

    def revoke(self, session_id: str) -> None:
        with self._db.session() as session:
            session.execute(update(AuthSession).where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))

    def revoke_all(self, user_id: int) -> int:
        with self._db.session() as session:
            result = session.execute(update(AuthSession).where(
                AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)).values(revoked_at=utcnow()))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


class SignInFailures:
    """Counts recent failures per key; old rows are dropped as new ones are written."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, keys: list[str], window: timedelta) -> None:
        now = utcnow()
        with self._db.session() as session:
            session.execute(delete(SignInFailure).where(SignInFailure.at < now - window))
            session.add_all(SignInFailure(key=key[:320], at=now) for key in keys)

    def recent(self, key: str, window: timedelta) -> tuple[int, datetime | None]:
        """(failures within the window, the oldest of them) for one key."""
        with self._db.session() as session:
            count, oldest = session.execute(
                select(func.count(SignInFailure.id), func.min(SignInFailure.at)).where(
                    SignInFailure.key == key[:320], SignInFailure.at >= utcnow() - window)).one()
        if oldest is not None and oldest.tzinfo is None:  # min() bypasses the column type on SQLite
            oldest = oldest.replace(tzinfo=timezone.utc)
        return int(count), oldest

    def clear(self, key: str) -> None:
        with self._db.session() as session:
            session.execute(delete(SignInFailure).where(SignInFailure.key == key[:320]))
