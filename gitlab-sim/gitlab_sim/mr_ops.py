"""Merge request life cycle: open, edit, close, merge (three methods, squash,
auto-merge) and asynchronous rebase — with GitLab's status codes for each refusal."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from . import mergeability
from .errors import ApiError, forbidden, not_allowed, unauthorized
from .git import GitError, Identity, MergeConflict
from .hook_payloads import merge_request_payload
from .pushes import branch_updated
from .state import MergeRequest, Pipeline, Project, User

if TYPE_CHECKING:
    from .backend import Backend

DRAFT_PREFIXES = ("Draft:", "Draft -", "[Draft]", "WIP:", "[WIP]")
REBASE_FAILED = "Rebase failed. Please rebase locally"


def identity(user: User) -> Identity:
    return Identity(user.name, user.email)


def is_draft_title(title: str) -> bool:
    return title.strip().lower().startswith(tuple(p.lower() for p in DRAFT_PREFIXES))


def emit_mr(backend: Backend, mr: MergeRequest, user: User, action: str,
            changes: dict[str, Any] | None = None) -> None:
    project = backend.state.projects[mr.project_id]
    backend.emit(project, "merge_request", merge_request_payload(backend, mr, user, action, changes))


def create(backend: Backend, project: Project, author: User, source_branch: str, target_branch: str,
           title: str, description: str = "", draft: bool = False, labels: list[str] | None = None,
           assignee_ids: list[int] | None = None, reviewer_ids: list[int] | None = None,
           squash: bool = False, remove_source_branch: bool | None = None) -> MergeRequest:
    state = backend.state
    with state.lock:
        source_sha = backend.branch_head(project, source_branch)
        target_sha = backend.branch_head(project, target_branch)
        if source_sha is None or target_sha is None:
            raise ApiError(400, "Invalid source or target branch")
        duplicate = next((m for m in state.open_mrs_for_branch(project.id, source_branch)
                          if m.target_branch == target_branch), None)
        if duplicate:
            raise ApiError(409, [f"Another open merge request already exists for this source branch: !{duplicate.iid}"])  # type: ignore[arg-type]
        now = backend.clock.now()
        mr = MergeRequest(
            id=state.next_id("merge_request"), iid=project.next_mr_iid, project_id=project.id,
            title=title, description=description, author_id=author.id,
            source_branch=source_branch, target_branch=target_branch, sha=source_sha,
            created_at=now, updated_at=now, draft=draft or is_draft_title(title),
            labels=list(labels or []), assignee_ids=list(assignee_ids or []),
            reviewer_ids=list(reviewer_ids or []), squash=squash,
            should_remove_source_branch=remove_source_branch,
            force_remove_source_branch=bool(remove_source_branch),
            merge_params={"force_remove_source_branch": "1" if remove_source_branch else "0"},
            start_sha=target_sha, base_sha=backend.repo(project).merge_base(target_sha, source_sha))
        project.next_mr_iid += 1
        state.merge_requests[mr.id] = mr
        emit_mr(backend, mr, author, "open")
        return mr


def update(backend: Backend, mr: MergeRequest, user: User, fields: dict[str, Any]) -> MergeRequest:
    """Apply a ``PUT /merge_requests/:iid`` body; fires update/close/reopen hooks."""
    with backend.state.lock:
        changes: dict[str, Any] = {}

        def change(name: str, value: Any) -> None:
            previous = getattr(mr, name)
            if previous != value:
                changes[name] = {"previous": previous, "current": value}
                setattr(mr, name, value)

        if "title" in fields:
            change("title", str(fields["title"]))
            change("draft", is_draft_title(mr.title))
        for name in ("description", "target_branch"):
            if name in fields:
                change(name, str(fields[name]))
        if "draft" in fields:
            change("draft", _truthy(fields["draft"]))
        if "squash" in fields:
            change("squash", _truthy(fields["squash"]))
        if "remove_source_branch" in fields:
            change("force_remove_source_branch", _truthy(fields["remove_source_branch"]))
        _update_people_and_labels(mr, fields, change)
        action = "update"
        event = fields.get("state_event")
        if event == "close" and mr.state == "opened":
            change("state", "closed")
            mr.closed_at, mr.merge_when_pipeline_succeeds, action = backend.clock.now(), False, "close"
        elif event == "reopen" and mr.state == "closed":
            change("state", "opened")
            mr.closed_at, action = None, "reopen"
        if changes:
            mr.updated_at = backend.clock.now()
            emit_mr(backend, mr, user, action, changes)
        return mr


def _update_people_and_labels(mr: MergeRequest, fields: dict[str, Any], change: Any) -> None:
    if "assignee_ids" in fields:
        change("assignee_ids", _int_list(fields["assignee_ids"]))
    elif "assignee_id" in fields:
        value = fields["assignee_id"]
        change("assignee_ids", [int(value)] if value not in (None, "", 0, "0") else [])
    if "reviewer_ids" in fields:
        change("reviewer_ids", _int_list(fields["reviewer_ids"]))
    if "labels" in fields:
        change("labels", _str_list(fields["labels"]))
    labels = list(mr.labels)
    labels += [x for x in _str_list(fields.get("add_labels")) if x not in labels]
    change("labels", [x for x in labels if x not in _str_list(fields.get("remove_labels"))])


def _int_list(value: Any) -> list[int]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [int(v) for v in items if str(v).strip() not in ("", "0")]


def _str_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}


# -- merging -------------------------------------------------------------------
def merge(backend: Backend, mr: MergeRequest, user: User, params: dict[str, Any]) -> MergeRequest:
    """``PUT /merge``: 401 no permission, 405 cannot merge, 409 stale sha, 422 merge failed."""
    state = backend.state
    with state.lock:
        project = state.projects[mr.project_id]
        if not mergeability.can_merge_into(state, project, user, mr.target_branch):
            raise unauthorized()
        blocking = [c for c in mergeability.blocking_checks(backend, mr, include_ci=False)
                    if c != "need_rebase"]
        if blocking:
            raise not_allowed()
        ci = mergeability.ci_status(backend, mr)
        auto = _truthy(params.get("auto_merge")) or _truthy(params.get("merge_when_pipeline_succeeds"))
        if ci and not (auto and ci == "ci_still_running"):
            raise not_allowed()
        sha = params.get("sha")
        if sha and sha != mr.sha:
            raise ApiError(409, f"SHA does not match HEAD of source branch: {mr.sha}")
        merge_params = {k: params[k] for k in ("sha", "squash", "should_remove_source_branch",
                                                 "merge_commit_message", "squash_commit_message")
                        if params.get(k) is not None}
        if ci:  # still running and auto-merge requested
            if not mr.merge_when_pipeline_succeeds:
                mr.merge_when_pipeline_succeeds, mr.merge_user_id = True, user.id
                mr.merge_params.update(merge_params)
                emit_mr(backend, mr, user, "update",
                        {"merge_when_pipeline_succeeds": {"previous": False, "current": True}})
            return mr
        execute_merge(backend, mr, user, merge_params)
        return mr


def execute_merge(backend: Backend, mr: MergeRequest, user: User, params: dict[str, Any]) -> None:
    """Do the git work and record the merge; raises ApiError(422) when git refuses."""
    state = backend.state
    project = state.projects[mr.project_id]
    repo = backend.repo(project)
    target = backend.branch_head(project, mr.target_branch)
    if target is None:
        raise ApiError(422, "Branch cannot be merged")
    squash = _truthy(params["squash"]) if "squash" in params else mr.squash
    source = mr.sha
    on_top = repo.is_ancestor(target, source)
    if project.merge_method in {"ff", "rebase_merge"} and not on_top:
        raise ApiError(422, "Only fast-forward merge is allowed for your project. "
                            "Please update your source branch")
    try:
        if squash:
            base = repo.merge_base(target, source)
            message = params.get("squash_commit_message") or mr.title
            source = repo.commit_tree(repo.commit_info(mr.sha).tree, [base] if base else [],
                                      message + "\n", _author_of(backend, mr), identity(user))
            mr.squash_commit_sha = source
        if project.merge_method == "ff":
            new_head = source
        else:
            message = params.get("merge_commit_message") or (
                f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
                f"See merge request {project.path_with_namespace}!{mr.iid}\n")
            tree = repo.merge_tree(target, source)
            new_head = repo.commit_tree(tree, [target, source], message, identity(user))
            mr.merge_commit_sha = new_head
        repo.set_branch(mr.target_branch, new_head, expected_old=target)
    except (MergeConflict, GitError) as exc:
        mr.squash_commit_sha = None
        mr.merge_error = str(exc)[:200]
        raise ApiError(422, "Branch cannot be merged") from exc
    now = backend.clock.now()
    mr.state, mr.merged_at, mr.merged_by_id, mr.updated_at = "merged", now, user.id, now
    mr.merge_when_pipeline_succeeds, mr.merge_error = False, None
    branch_updated(backend, project, mr.target_branch, target, new_head, user)
    emit_mr(backend, mr, user, "merge", {"state_id": {"previous": 1, "current": 3}})
    remove = params.get("should_remove_source_branch")
    if (_truthy(remove) if remove is not None else mr.force_remove_source_branch):
        old = backend.branch_head(project, mr.source_branch)
        repo.delete_branch(mr.source_branch)
        branch_updated(backend, project, mr.source_branch, old, None, user)


def _author_of(backend: Backend, mr: MergeRequest) -> Identity:
    return identity(backend.state.users[mr.author_id])


def pipeline_finished(backend: Backend, pipeline: Pipeline) -> None:
    """Auto-merge: merge MRs waiting on this pipeline, or abort it when CI failed."""
    state = backend.state
    with state.lock:
        for mr in state.project_merge_requests(pipeline.project_id):
            if not (mr.state == "opened" and mr.merge_when_pipeline_succeeds and mr.sha == pipeline.sha):
                continue
            if state.head_pipeline(mr) is not pipeline:
                continue
            user = state.users[mr.merge_user_id or mr.author_id]
            if mergeability.blocking_checks(backend, mr):
                if mergeability.ci_status(backend, mr) != "ci_still_running":
                    mr.merge_when_pipeline_succeeds = False
                    emit_mr(backend, mr, user, "update",
                            {"merge_when_pipeline_succeeds": {"previous": True, "current": False}})
                continue
            try:
                execute_merge(backend, mr, user, mr.merge_params)
            except ApiError:
                mr.merge_when_pipeline_succeeds = False


# -- rebasing ------------------------------------------------------------------
def request_rebase(backend: Backend, mr: MergeRequest, user: User, skip_ci: bool) -> None:
    """``PUT /rebase``: always asynchronous; the outcome shows up on the MR later."""
    state = backend.state
    with state.lock:
        project = state.projects[mr.project_id]
        if mr.state != "opened":
            raise not_allowed()
        if not mergeability.can_push_to(state, project, user, mr.source_branch):
            raise forbidden()
        mr.rebase_in_progress, mr.merge_error = True, None
    timer = threading.Timer(backend.rebase_delay, _rebase_now, args=(backend, mr, user, skip_ci))
    timer.daemon = True
    timer.start()


def _rebase_now(backend: Backend, mr: MergeRequest, user: User, skip_ci: bool) -> None:
    state = backend.state
    project = state.projects[mr.project_id]
    repo = backend.repo(project)
    with state.lock:
        source, target = mr.sha, backend.branch_head(project, mr.target_branch)
    try:
        rebased = repo.rebase(source, target, identity(user)) if target else source
        with state.lock:
            if rebased != source:
                repo.set_branch(mr.source_branch, rebased, expected_old=source)
                branch_updated(backend, project, mr.source_branch, source, rebased, user, skip_ci=skip_ci)
    except GitError:
        with state.lock:
            mr.merge_error = REBASE_FAILED
    finally:
        with state.lock:
            mr.rebase_in_progress = False
