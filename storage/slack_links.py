"""Links between Slack users and GitLab users, keyed by the GitLab user id (names are display only),
and each linked user's opt-in to direct messages about the merge requests they queued."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from merge_assist.storage.db import Database
from merge_assist.storage.models import User
from merge_assist.storage.users import UserView


class SlackLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    def by_slack(self, slack_user_id: str) -> UserView | None:
        with self._db.session() as session:
            user = self._linked(session, slack_user_id)
            if user is None:
                return None
            return UserView(user.id, user.username, user.gitlab_user_id, user.gitlab_username, user.slack_user_id)

    def link(self, slack_user_id: str, gitlab_user_id: int, gitlab_username: str) -> None:
        """Link `slack_user_id` to the GitLab user with this id, replacing any earlier link of
        either side."""
        with self._db.session() as session:
            for previous in session.scalars(select(User).where(User.slack_user_id == slack_user_id)):
                previous.slack_user_id = None
                previous.slack_notify = False
            session.flush()
            user = session.scalar(select(User).where(User.gitlab_user_id == gitlab_user_id))
            if user is None:
                taken = session.scalar(select(User.id).where(User.username == f"gitlab:{gitlab_username}"))
                username = f"gitlab:{gitlab_username}" if taken is None else f"gitlab-id:{gitlab_user_id}"
                user = User(username=username, gitlab_user_id=gitlab_user_id)
                session.add(user)
            user.gitlab_username = gitlab_username
            user.slack_user_id = slack_user_id
            session.flush()

    def unlink(self, slack_user_id: str) -> bool:
        with self._db.session() as session:
            users = list(session.scalars(select(User).where(User.slack_user_id == slack_user_id)))
            for user in users:
                user.slack_user_id = None
                user.slack_notify = False  # a later link, maybe by someone else, starts opted out
            return bool(users)

    def notify_enabled(self, slack_user_id: str) -> bool | None:
        """Whether this Slack user gets direct messages; None when they are not linked."""
        with self._db.session() as session:
            user = self._linked(session, slack_user_id)
            return None if user is None else user.slack_notify

    def set_notify(self, slack_user_id: str, enabled: bool) -> bool | None:
        """Set the opt-in; the previous value, or None (and nothing changed) when not linked."""
        with self._db.session() as session:
            user = self._linked(session, slack_user_id)
            if user is None:
                return None
            previous, user.slack_notify = user.slack_notify, enabled
            return previous

    def direct_message_recipient(self, gitlab_user_id: int) -> str | None:
        """The Slack user id to tell about this GitLab user's merge requests, if they opted in."""
        with self._db.session() as session:
            return session.scalar(select(User.slack_user_id).where(
                User.gitlab_user_id == gitlab_user_id, User.slack_notify.is_(True), User.active.is_(True),
                User.slack_user_id.is_not(None)))

    @staticmethod
    def _linked(session: Session, slack_user_id: str) -> User | None:
        user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        return user if user is not None and user.gitlab_user_id is not None else None
