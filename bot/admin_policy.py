"""Who may do what: the one place where admin roles become permissions.

Every admin route names the permission it needs and how to find the project it touches; the
HTTP layer asks `Principal.allows` before running any handler. Grants are global or scoped to one
project; a scoped grant counts only on that project, and never for global resources.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


ANY_PROJECT = -1
"""Scope of lists: the permission on at least one project is enough (the list is then filtered)."""


class Permission(str, enum.Enum):
    SIGNED_IN = "signed_in"            # one's own session and password
    READ = "read"                      # lanes, entries, projects, audit, rules
    PRIORITY = "priority"              # change an entry's priority
    CANCEL = "cancel"                  # take an entry out of the queue
    MANAGE_PROJECT = "manage_project"  # project settings, pause/resume, freeze
    MANAGE_GRANTS = "manage_grants"    # role grants within a project
    MANAGE_USERS = "manage_users"      # accounts, global grants, Slack links


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.SIGNED_IN, Permission.READ}),
    "priority_manager": frozenset({Permission.SIGNED_IN, Permission.READ, Permission.PRIORITY}),
    "project_owner": frozenset({Permission.SIGNED_IN, Permission.READ, Permission.PRIORITY, Permission.CANCEL,
                                Permission.MANAGE_PROJECT, Permission.MANAGE_GRANTS}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Grant:
    role: str
    project_id: int | None  # None: every project


@dataclass(frozen=True)
class Principal:
    """A signed-in user and the grants they hold right now (read per request, never from the token)."""

    user_id: int
    username: str
    gitlab_user_id: int | None
    session_id: str
    grants: tuple[Grant, ...]

    def allows(self, permission: Permission, project_id: int | None) -> bool:
        """Whether any grant gives `permission`; for `project_id=None` only global grants count."""
        if permission is Permission.SIGNED_IN:
            return True
        return any(permission in ROLE_PERMISSIONS.get(g.role, frozenset())
                   and (g.project_id is None or g.project_id == project_id or project_id == ANY_PROJECT)
                   for g in self.grants)

    def projects_with(self, permission: Permission) -> frozenset[int] | None:
        """Projects on which `permission` holds: None means all of them."""
        holding = [g for g in self.grants if permission in ROLE_PERMISSIONS.get(g.role, frozenset())]
        if any(g.project_id is None for g in holding):
            return None
        return frozenset(g.project_id for g in holding if g.project_id is not None)

    def may_grant(self, role: str, project_id: int | None) -> bool:
        """Project owners grant roles within their projects; admin and global grants need an admin."""
        if role == "admin" or project_id is None:
            return self.allows(Permission.MANAGE_USERS, None)
        return self.allows(Permission.MANAGE_GRANTS, project_id)

    def permissions_on(self, project_id: int | None) -> list[str]:
        return sorted(p.value for p in Permission if self.allows(p, project_id))
