"""Users, their GitLab/Slack links, and role grants (global or scoped to one project)."""

from __future__ import annotations

from dataclasses import dataclass

import bcrypt
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from merge_assist.storage.db import Database
from merge_assist.storage.models import ROLE_NAMES, Role, RoleGrant, User


class UnknownRole(ValueError):
    pass


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    gitlab_user_id: int | None
    gitlab_username: str | None
    slack_user_id: str | None


def _view(user: User) -> UserView:
    return UserView(user.id, user.username, user.gitlab_user_id, user.gitlab_username, user.slack_user_id)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create_local(self, username: str, password: str) -> UserView:
        with self._db.session() as session:
            user = User(username=username, password_hash=hash_password(password))
            session.add(user)
            session.flush()
            return _view(user)

    def verify_password(self, username: str, password: str) -> UserView | None:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None or not user.password_hash:
                bcrypt.checkpw(b"timing", bcrypt.hashpw(b"x", bcrypt.gensalt(4)))
                return None
            if not bcrypt.checkpw(password.encode(), user.password_hash.encode()):
                return None
            return _view(user)

    def ensure_gitlab_user(self, gitlab_username: str, gitlab_user_id: int | None = None) -> UserView:
        """The user row for a GitLab identity, created on first use."""
        with self._db.session() as session:
            user = self._find_gitlab(session, gitlab_username, gitlab_user_id)
            if user is None:
                user = User(username=f"gitlab:{gitlab_username}", gitlab_username=gitlab_username)
                session.add(user)
            if gitlab_user_id is not None and user.gitlab_user_id is None:
                user.gitlab_user_id = gitlab_user_id
            session.flush()
            return _view(user)

    def link_slack(self, gitlab_username: str, slack_user_id: str, gitlab_user_id: int | None = None) -> UserView:
        view = self.ensure_gitlab_user(gitlab_username, gitlab_user_id)
        with self._db.session() as session:
            user = session.get(User, view.id)
            assert user is not None
            user.slack_user_id = slack_user_id
            session.flush()
            return _view(user)

    def by_slack(self, slack_user_id: str) -> UserView | None:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
            return _view(user) if user else None

    def grant(self, user_id: int, role: str, project_id: int | None = None, granted_by: str = "") -> None:
        with self._db.session() as session:
            role_row = self._role(session, role)
            exists = session.scalar(select(RoleGrant).where(
                RoleGrant.user_id == user_id, RoleGrant.role_id == role_row.id,
                RoleGrant.project_id.is_(None) if project_id is None else RoleGrant.project_id == project_id,
            ))
            if exists is None:
                session.add(RoleGrant(user_id=user_id, role_id=role_row.id, project_id=project_id, granted_by=granted_by))

    def revoke(self, user_id: int, role: str, project_id: int | None = None) -> int:
        with self._db.session() as session:
            role_row = self._role(session, role)
            grants = session.scalars(select(RoleGrant).where(
                RoleGrant.user_id == user_id, RoleGrant.role_id == role_row.id,
                RoleGrant.project_id.is_(None) if project_id is None else RoleGrant.project_id == project_id,
            )).all()
            for grant in grants:
                session.delete(grant)
            return len(grants)

    def roles_for(self, *, project_id: int, gitlab_user_id: int | None = None,
                  gitlab_username: str | None = None, user_id: int | None = None) -> frozenset[str]:
        """Roles that apply on this project: global grants plus grants scoped to it."""
        with self._db.session() as session:
            if user_id is None:
                user = self._find_gitlab(session, gitlab_username, gitlab_user_id)
                if user is None:
                    return frozenset()
                user_id = user.id
            names = session.scalars(
                select(Role.name).join(RoleGrant, RoleGrant.role_id == Role.id).where(
                    RoleGrant.user_id == user_id,
                    or_(RoleGrant.project_id.is_(None), RoleGrant.project_id == project_id),
                )
            )
            return frozenset(names)

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

    @staticmethod
    def _find_gitlab(session: Session, username: str | None, user_id: int | None) -> User | None:
        if user_id is not None:
            user = session.scalar(select(User).where(User.gitlab_user_id == user_id))
            if user is not None:
                return user
        if username is not None:
            return session.scalar(select(User).where(User.gitlab_username == username))
        return None
