"""Users, their GitLab/Slack links, and role grants (global or scoped to one project).

Identity is the GitLab user id: grants and Slack links hang on a user row found by that id only.
A GitLab username is stored for display and never used to find anyone, so a grant made for
`carl` is not honoured for whoever takes the name `carl` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from merge_assist.storage.db import Database
from merge_assist.storage.models import ROLE_NAMES, Role, RoleGrant, User
from merge_assist.storage.passwords import hash_password, password_matches


class UnknownRole(ValueError):
    pass


class UserExists(ValueError):
    """A username, GitLab id or Slack id is already taken; the message names which."""


class UnknownUser(LookupError):
    pass


class InvalidUsername(ValueError):
    """Local usernames are 1-255 characters without `:` (`gitlab:<id>` names GitLab identities)."""


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    gitlab_user_id: int | None
    gitlab_username: str | None
    slack_user_id: str | None
    email: str | None = None
    active: bool = True
    has_password: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class GrantView:
    id: int
    user_id: int
    role: str
    project_id: int | None
    granted_by: str
    created_at: datetime


def _view(user: User) -> UserView:
    return UserView(user.id, user.username, user.gitlab_user_id, user.gitlab_username, user.slack_user_id,
                    user.email, bool(user.active), bool(user.password_hash), user.created_at, user.updated_at)


def _scope(project_id: int | None):  # type: ignore[no-untyped-def]
    return RoleGrant.project_id.is_(None) if project_id is None else RoleGrant.project_id == project_id


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- local accounts -------------------------------------------------------------------------

    def create_local(self, username: str, password: str, email: str | None = None) -> UserView:
        """Raises InvalidUsername, PasswordRejected or UserExists (never a database error carrying the hash)."""
        if not username.strip() or len(username) > 255 or ":" in username:
            raise InvalidUsername("a username has 1 to 255 characters and no ':'")
        password_hash = hash_password(password)
        try:
            with self._db.session() as session:
                if session.scalar(select(User.id).where(User.username == username)) is not None:
                    raise UserExists(f"a user named {username!r} already exists")
                user = User(username=username, password_hash=password_hash, email=email, active=True)
                session.add(user)
                session.flush()
                return _view(user)
        except IntegrityError:
            raise UserExists(f"a user named {username!r} already exists") from None

    def authenticate(self, username: str, password: str) -> UserView | None:
        """The active user with this password, or None; as slow for unknown names as for known ones."""
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
        if not password_matches(password, user.password_hash if user is not None else None):
            return None
        assert user is not None
        return _view(user) if user.active else None

    def get(self, user_id: int) -> UserView | None:
        with self._db.session() as session:
            user = session.get(User, user_id)
            return _view(user) if user else None

    def by_username(self, username: str) -> UserView | None:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            return _view(user) if user else None

    def all_users(self) -> list[UserView]:
        with self._db.session() as session:
            return [_view(u) for u in session.scalars(select(User).order_by(User.id))]

    def update(self, user_id: int, *, email: str | None = None, active: bool | None = None,
               password: str | None = None) -> UserView:
        password_hash = hash_password(password) if password is not None else None
        with self._db.session() as session:
            user = self._existing(session, user_id)
            if email is not None:
                user.email = email
            if active is not None:
                user.active = active
            if password_hash is not None:
                user.password_hash = password_hash
            session.flush()
            return _view(user)

    def password_ok(self, user_id: int, password: str) -> bool:
        with self._db.session() as session:
            user = self._existing(session, user_id)
            stored = user.password_hash
        return password_matches(password, stored)

    # --- GitLab and Slack identities --------------------------------------------------------------

    def ensure_gitlab_user(self, gitlab_username: str, gitlab_user_id: int) -> UserView:
        """The user row for a GitLab id, created on first use; the name is refreshed for display."""
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.gitlab_user_id == gitlab_user_id))
            if user is None:
                user = User(username=f"gitlab:{gitlab_user_id}", gitlab_user_id=gitlab_user_id, active=True)
                session.add(user)
            user.gitlab_username = gitlab_username
            session.flush()
            return _view(user)

    def link_gitlab(self, user_id: int, gitlab_user_id: int, gitlab_username: str) -> UserView:
        """Let a local account act as (and be audited as) a GitLab user."""
        try:
            with self._db.session() as session:
                user = self._existing(session, user_id)
                user.gitlab_user_id, user.gitlab_username = gitlab_user_id, gitlab_username
                session.flush()
                return _view(user)
        except IntegrityError:
            raise UserExists(f"GitLab user {gitlab_user_id} is already linked to another account") from None

    def link_slack(self, gitlab_username: str, slack_user_id: str, gitlab_user_id: int) -> UserView:
        view = self.ensure_gitlab_user(gitlab_username, gitlab_user_id)
        try:
            with self._db.session() as session:
                user = self._existing(session, view.id)
                user.slack_user_id = slack_user_id
                session.flush()
                return _view(user)
        except IntegrityError:
            raise UserExists(f"Slack user {slack_user_id} is already linked to another GitLab user") from None

    def by_slack(self, slack_user_id: str) -> UserView | None:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
            return _view(user) if user else None

    def slack_links(self) -> list[UserView]:
        with self._db.session() as session:
            rows = session.scalars(select(User).where(User.slack_user_id.is_not(None)).order_by(User.id))
            return [_view(u) for u in rows]

    # --- role grants --------------------------------------------------------------------------------

    def grant(self, user_id: int, role: str, project_id: int | None = None, granted_by: str = "") -> GrantView:
        """Idempotent: granting what is already held returns the existing grant."""
        with self._db.session() as session:
            self._existing(session, user_id)
            role_row = self._role(session, role)
            row = session.scalar(select(RoleGrant).where(
                RoleGrant.user_id == user_id, RoleGrant.role_id == role_row.id, _scope(project_id)))
            if row is None:
                row = RoleGrant(user_id=user_id, role_id=role_row.id, project_id=project_id, granted_by=granted_by)
                session.add(row)
                session.flush()
            return GrantView(row.id, user_id, role, row.project_id, row.granted_by, row.created_at)

    def revoke(self, user_id: int, role: str, project_id: int | None = None) -> int:
        with self._db.session() as session:
            role_row = self._role(session, role)
            grants = session.scalars(select(RoleGrant).where(
                RoleGrant.user_id == user_id, RoleGrant.role_id == role_row.id, _scope(project_id))).all()
            for row in grants:
                session.delete(row)
            return len(grants)

    def get_grant(self, grant_id: int) -> GrantView | None:
        found = self.grants(grant_id=grant_id)
        return found[0] if found else None

    def revoke_grant(self, grant_id: int) -> None:
        with self._db.session() as session:
            row = session.get(RoleGrant, grant_id)
            if row is not None:
                session.delete(row)

    def grants(self, *, user_id: int | None = None, project_id: int | None = None,
               grant_id: int | None = None) -> list[GrantView]:
        query = select(RoleGrant, Role.name).join(Role, Role.id == RoleGrant.role_id).order_by(RoleGrant.id)
        if user_id is not None:
            query = query.where(RoleGrant.user_id == user_id)
        if project_id is not None:
            query = query.where(RoleGrant.project_id == project_id)
        if grant_id is not None:
            query = query.where(RoleGrant.id == grant_id)
        with self._db.session() as session:
            return [GrantView(g.id, g.user_id, name, g.project_id, g.granted_by, g.created_at)
                    for g, name in session.execute(query)]

    def roles_for(self, *, project_id: int, gitlab_user_id: int | None = None,
                  gitlab_username: str | None = None, user_id: int | None = None) -> frozenset[str]:
        """Roles that apply on this project: global grants plus grants scoped to it.

        `gitlab_username` is accepted for callers that have it, and ignored: names are not identity.
        """
        del gitlab_username
        with self._db.session() as session:
            if user_id is None:
                if gitlab_user_id is None:
                    return frozenset()
                user_id = session.scalar(select(User.id).where(User.gitlab_user_id == gitlab_user_id,
                                                               User.active.is_(True)))
                if user_id is None:
                    return frozenset()
            names = session.scalars(
                select(Role.name).join(RoleGrant, RoleGrant.role_id == Role.id).where(
                    RoleGrant.user_id == user_id,
                    or_(RoleGrant.project_id.is_(None), RoleGrant.project_id == project_id),
                )
            )
            return frozenset(names)

    @staticmethod
    def _existing(session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise UnknownUser(f"no user with id {user_id}")
        return user

    @staticmethod
    def _role(session: Session, name: str) -> Role:
        if name not in ROLE_NAMES:
            raise UnknownRole(f"unknown role {name!r}; roles are: {', '.join(ROLE_NAMES)}")
        role = session.scalar(select(Role).where(Role.name == name))
        if role is None:
            role = Role(name=name)
            session.add(role)
            session.flush()
        return role
