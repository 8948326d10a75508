"""Password hashing with bcrypt, and the checks that keep its limits from surprising anyone."""

from __future__ import annotations

import functools

import bcrypt

MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt>=5: refuses) anything longer
MIN_PASSWORD_CHARS = 8
BCRYPT_ROUNDS = 12


class PasswordRejected(ValueError):
    """A password that cannot be used; the message says why and is safe to show."""


def check_password_length(password: str) -> None:
    """Refuse what bcrypt cannot hash, before any user is looked up (no enumeration)."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordRejected(f"passwords are at most {MAX_PASSWORD_BYTES} bytes (UTF-8)")


def check_new_password(password: str) -> None:
    check_password_length(password)
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordRejected(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


def hash_password(password: str) -> str:
    check_new_password(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


@functools.cache
def _dummy_hash() -> bytes:
    # Same cost as real hashes, so an unknown name takes as long to refuse as a wrong password.
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(BCRYPT_ROUNDS))


def password_matches(password: str, stored_hash: str | None) -> bool:
    """Constant work whether or not there is a stored hash."""
    check_password_length(password)
    if not stored_hash:
        bcrypt.checkpw(password.encode(), _dummy_hash())
        return False
    return bcrypt.checkpw(password.encode(), stored_hash.encode())
