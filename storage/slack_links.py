"""Links between Slack users and GitLab users, keyed by the GitLab user id (names are display only)."""

from __future__ import annotations

from sqlalchemy import select

from merge_assist.storage.db import Database
from merge_assist.storage.models import User
from merge_assist.storage.users import UserView


class SlackLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    def by_slack(self, slack_user_id: str) -> UserView | None:
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
            if user is None or user.gitlab_user_id is None:
                return None
            return UserView(user.id, user.username, user.gitlab_user_id, user.gitlab_username, user.slack_user_id)

    def link(self, slack_user_id: str, gitlab_user_id: int, gitlab_username: str) -> None:
        """Link `slack_user_id` to the GitLab user with this id, replacing any earlier link of
        either side."""
        with self._db.session() as session:
            for previous in session.scalars(select(User).where(User.slack_user_id == slack_user_id)):
                previous.slack_user_id = None
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
            return bool(users)
