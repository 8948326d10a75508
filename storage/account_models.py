"""Tables of the admin sign-in: sessions (one per sign-in, holding the current refresh token)
and recent sign-in failures (for throttling, shared by every process through the database)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from merge_assist.storage.models import Base
from merge_assist.storage.types import UTCDateTime, utcnow


class AuthSession(Base):
    """One sign-in. Refresh tokens rotate: only `refresh_jti` is valid; presenting an older one
    means it was stolen or replayed, and the whole session is revoked."""

    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInFailure(Base):
    """A failed sign-in, keyed by `user:<name>` and by `addr:<address>` (one row each)."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
