"""Built-in authorization (see DESIGN.md, Authorization).

- Read-only commands (status, help): anyone with at least Guest access, and Slack users whose
  identity is not linked to a GitLab user.
- Commands that change something (merge, cancel, retry, priority, ...): a linked GitLab user
  whose access level may merge into the target branch.
- A priority above normal: additionally the bot role admin, project_owner or priority_manager.

Not a configurable rule on purpose: a project's `.merge-assist.yml` must not be able to switch
its own authorization off.
"""

from __future__ import annotations

from merge_assist.rules.hookspecs import ACCESS_GUEST, AuthDecision, AuthRequest, hookimpl
from merge_assist.rules.model import PRIORITY_ROLES, Priority

ACCESS_LEVEL_NAMES = {0: "no access", 5: "Minimal Access", 10: "Guest", 15: "Planner", 20: "Reporter",
                      30: "Developer", 40: "Maintainer", 50: "Owner", 60: "Admin"}


def access_level_name(level: int) -> str:
    return ACCESS_LEVEL_NAMES.get(level, f"access level {level}")


def _read(request: AuthRequest) -> AuthDecision:
    unlinked_slack_user = request.actor.gitlab_user_id is None and request.actor.channel == "slack"
    if unlinked_slack_user or request.access_level >= ACCESS_GUEST:
        return AuthDecision.allow()
    return AuthDecision.deny(f"`{request.command}` needs at least Guest access to this project")


def _change(request: AuthRequest) -> AuthDecision:
    if request.actor.gitlab_user_id is None:
        return AuthDecision.deny(
            f"`{request.command}` needs a GitLab user; link your Slack identity to your GitLab "
            "account first (unlinked users can only read)"
        )
    if request.access_level < request.required_merge_level:
        return AuthDecision.deny(
            f"`{request.command}` needs {access_level_name(request.required_merge_level)} access to "
            f"merge into `{request.target_branch}`; you have {access_level_name(request.access_level)}"
        )
    raises_priority = request.requested_priority is not None and request.requested_priority > Priority.NORMAL
    if raises_priority and not request.roles & PRIORITY_ROLES:
        return AuthDecision.deny(
            "a priority above normal needs the admin, project_owner or priority_manager role"
        )
    return AuthDecision.allow()


@hookimpl
def merge_assist_authorize(request: AuthRequest) -> AuthDecision:
    return _change(request) if request.mutates else _read(request)
