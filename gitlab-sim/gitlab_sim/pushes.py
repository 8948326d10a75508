"""What happens when a branch moves — by API commit, merge, rebase or ``git push``.

GitLab's ``PostReceive``: a Push Hook, a pipeline for the new head, and every open
MR from that branch picks up the new sha (Merge Request Hook ``update`` with
``oldrev``; auto-merge is aborted because the approved code changed).

Like GitLab's ``MergeRequests::RefreshService``, an open MR whose head commit arrives
on its target branch with a push is marked merged by the pusher (Merge Request Hook
``merge``), its ``merge_commit_sha`` being the first-parent commit that brought it in.

GitLab's ``Chain::Skip``: the push option ``ci.skip`` or ``[skip ci]``/``[ci skip]`` in
the head commit's message records a ``skipped`` pipeline with no jobs instead of running
one (``ci.skip`` does not skip merge request pipelines; the message does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .hook_payloads import merge_request_payload, push_payload
from .state import MergeRequest, Project, User

if TYPE_CHECKING:
    from .backend import Backend

ZERO_SHA = "0" * 40
SKIP_CI_MESSAGE = re.compile(r"\[(ci[ _-]skip|skip[ _-]ci)\]", re.IGNORECASE)
SKIP_CI_OPTION = "ci.skip"


def branch_updated(backend: Backend, project: Project, branch: str, before: str | None,
                   after: str | None, user: User, *, skip_ci: bool = False,
                   push_options: Sequence[str] = ()) -> None:
    """React to ``branch`` moving from ``before`` to ``after`` (None = absent).

    ``skip_ci`` creates no pipeline at all (the simulator's rebase API); ``push_options``
    are those of a ``git push -o``.
    """
    state = backend.state
    with state.lock:
        backend.refs_changed(project)
        backend.emit(project, "push",
                     push_payload(backend, project, user, branch, before or ZERO_SHA, after or ZERO_SHA))
        if after is None:
            return
        _merge_landed(backend, project, branch, before, after, user)
        mrs = state.open_mrs_for_branch(project.id, branch)
        updates = [(mr, _move_head(backend, project, mr, after)) for mr in mrs if mr.sha != after]
        if not skip_ci:
            message_skips = bool(SKIP_CI_MESSAGE.search(backend.repo(project).commit_info(after).message))
            backend.runner.create(project.id, branch, after, before or ZERO_SHA, "push", user.id,
                                  skipped=message_skips or SKIP_CI_OPTION in push_options)
            if project.merge_request_pipelines:
                for mr in mrs:
                    backend.runner.create(project.id, f"refs/merge-requests/{mr.iid}/head", after,
                                          before or ZERO_SHA, "merge_request_event", user.id, mr.iid,
                                          skipped=message_skips)
        for mr, (oldrev, changes) in updates:
            backend.emit(project, "merge_request",
                         merge_request_payload(backend, mr, user, "update", changes, oldrev=oldrev))


def _move_head(backend: Backend, project: Project, mr: MergeRequest,
               after: str) -> tuple[str, dict[str, Any]]:
    """Point the MR at its branch's new head; returns (oldrev, changes for the hook)."""
    oldrev = mr.sha
    mr.sha = after
    mr.updated_at = backend.clock.now()
    mr.merge_error = None
    target = backend.branch_head(project, mr.target_branch)
    mr.start_sha = target
    mr.base_sha = backend.repo(project).merge_base(target, after) if target else None
    changes: dict[str, Any] = {}
    if mr.merge_when_pipeline_succeeds:
        mr.merge_when_pipeline_succeeds = False
        changes["merge_when_pipeline_succeeds"] = {"previous": True, "current": False}
    return oldrev, changes


def _merge_landed(backend: Backend, project: Project, branch: str, before: str | None, after: str,
                  user: User) -> None:
    """Mark merged the open MRs into ``branch`` whose head commit this push brought in."""
    candidates = [mr for mr in backend.state.project_merge_requests(project.id)
                  if mr.state == "opened" and mr.target_branch == branch and mr.sha != before]
    if not candidates:
        return
    repo = backend.repo(project)
    arrived = set(repo.log(after, before))
    landed = [mr for mr in candidates if mr.sha in arrived]
    if not landed:
        return
    exclude = [f"^{before}"] if before else []
    first_parents = repo.out("rev-list", "--first-parent", "--reverse", after, *exclude).split()
    now = backend.clock.now()
    for mr in landed:
        mr.merge_commit_sha = next(c for c in first_parents if c == mr.sha or repo.is_ancestor(mr.sha, c))
        mr.state, mr.merged_at, mr.merged_by_id, mr.updated_at = "merged", now, user.id, now
        mr.merge_when_pipeline_succeeds, mr.merge_error = False, None
        backend.emit(project, "merge_request",
                     merge_request_payload(backend, mr, user, "merge", {"state_id": {"previous": 1, "current": 3}}))
