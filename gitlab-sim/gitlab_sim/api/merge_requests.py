"""Routes under ``/merge_requests``: MRs, merge/rebase, notes, emoji, threads, approvals."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .. import conversation, mr_ops
from .. import serializers as ser
from ..errors import ApiError, not_found
from ..mergeability import effective_access
from ..state import AwardEmoji, MergeRequest, Note
from .http import ApiContext, Reply, paginate

ORDER_FIELDS = {"created_at", "updated_at", "title", "merged_at"}


def _filter(ctx: ApiContext, mrs: list[MergeRequest]) -> list[MergeRequest]:
    wanted_state = ctx.text("state", "all")
    scope = ctx.text("scope", "all")
    result = []
    for mr in mrs:
        if wanted_state not in ("all", None) and mr.state != wanted_state:
            continue
        if scope == "assigned_to_me" and ctx.user.id not in mr.assignee_ids:
            continue
        if scope == "created_by_me" and mr.author_id != ctx.user.id:
            continue
        if any(ctx.text(f) and getattr(mr, f) != ctx.text(f) for f in ("target_branch", "source_branch")):
            continue
        if ctx.text("author_id") and mr.author_id != ctx.number("author_id", 0):
            continue
        if ctx.text("assignee_id") and ctx.number("assignee_id", 0) not in mr.assignee_ids:
            continue
        labels = ctx.params.get("labels")
        if labels and not set(labels if isinstance(labels, list) else labels.split(",")) <= set(mr.labels):
            continue
        if "iids" in ctx.params and str(mr.iid) not in [str(i) for i in ctx.params["iids"]]:
            continue
        result.append(mr)
    order = ctx.text("order_by", "created_at")
    key = order if order in ORDER_FIELDS else "created_at"
    result.sort(key=lambda m: (getattr(m, key) or 0, m.id), reverse=ctx.text("sort", "desc") != "asc")
    return result


def _render(ctx: ApiContext) -> Any:
    return lambda mr: ser.merge_request(ctx.backend, mr, None)


def list_all(ctx: ApiContext) -> Any:
    """``GET /merge_requests`` across projects (default scope: created_by_me, like GitLab)."""
    if "scope" not in ctx.params:
        ctx.params["scope"] = "created_by_me"
    with ctx.state.lock:
        visible = [m for m in ctx.state.merge_requests.values()
                   if ctx.user.is_admin or effective_access(ctx.state, ctx.state.projects[m.project_id], ctx.user)]
        return paginate(ctx, _filter(ctx, visible), _render(ctx))


def list_project(ctx: ApiContext) -> Any:
    with ctx.state.lock:
        mrs = ctx.state.project_merge_requests(ctx.project().id)
        return paginate(ctx, _filter(ctx, mrs), _render(ctx))


def get(ctx: ApiContext) -> Any:
    with ctx.state.lock:
        return ser.merge_request(ctx.backend, ctx.merge_request(), ctx.user,
                                 include_rebase_in_progress=ctx.flag("include_rebase_in_progress"))


def create(ctx: ApiContext) -> Any:
    project = ctx.project()
    ids = ctx.params.get("assignee_ids") or ([ctx.params["assignee_id"]] if ctx.params.get("assignee_id") else [])
    mr = mr_ops.create(ctx.backend, project, ctx.user, ctx.required("source_branch"),
                       ctx.required("target_branch"), ctx.required("title"),
                       ctx.text("description") or "", labels=_split(ctx.params.get("labels")),
                       assignee_ids=[int(i) for i in ids],
                       reviewer_ids=[int(i) for i in ctx.params.get("reviewer_ids") or []],
                       squash=ctx.flag("squash"),
                       remove_source_branch=ctx.flag("remove_source_branch") if "remove_source_branch" in ctx.params else None)
    return Reply(ser.merge_request(ctx.backend, mr, ctx.user), 201)


def _split(value: Any) -> list[str]:
    if not value:
        return []
    return value if isinstance(value, list) else [v for v in str(value).split(",") if v]


def update(ctx: ApiContext) -> Any:
    mr = mr_ops.update(ctx.backend, ctx.merge_request(), ctx.user, ctx.params)
    return ser.merge_request(ctx.backend, mr, ctx.user)


def merge(ctx: ApiContext) -> Any:
    mr = mr_ops.merge(ctx.backend, ctx.merge_request(), ctx.user, ctx.params)
    return ser.merge_request(ctx.backend, mr, ctx.user)


def cancel_auto_merge(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    with ctx.state.lock:
        if mr.state != "opened":
            raise ApiError(406, "406 Not Acceptable")
        mr.merge_when_pipeline_succeeds, mr.merge_user_id = False, None
        return Reply(ser.merge_request(ctx.backend, mr, ctx.user), 201)


def rebase(ctx: ApiContext) -> Any:
    mr_ops.request_rebase(ctx.backend, ctx.merge_request(), ctx.user, ctx.flag("skip_ci"))
    return Reply({"rebase_in_progress": True}, 202)


def commits(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    project = ctx.project()
    repo = ctx.backend.repo(project)
    base = mr.base_sha or ctx.backend.branch_head(project, mr.target_branch)
    return paginate(ctx, repo.log(mr.sha, base), lambda sha: ser.commit(ctx.backend, project, sha))


def changes(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    project = ctx.project()
    base = mr.base_sha or mr.sha
    paths = ctx.backend.repo(project).changed_paths(base, mr.sha)
    data = ser.merge_request(ctx.backend, mr, ctx.user)
    data["changes"] = [{"old_path": p, "new_path": p, "a_mode": "100644", "b_mode": "100644",
                        "new_file": False, "renamed_file": False, "deleted_file": False, "diff": ""}
                       for p in paths]
    data["changes_count"] = str(len(paths))
    return data


# -- notes, emoji, discussions -----------------------------------------------------
def _note(ctx: ApiContext, mr: MergeRequest) -> Note:
    return ctx.owned(ctx.state.notes, "note_id", lambda n: n.mr_id == mr.id, "Note")


def list_notes(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    notes = ctx.state.mr_notes(mr)
    notes.sort(key=lambda n: (n.created_at, n.id), reverse=ctx.text("sort", "desc") != "asc")
    return paginate(ctx, notes, lambda n: ser.note(ctx.backend, n))


def get_note(ctx: ApiContext) -> Any:
    return ser.note(ctx.backend, _note(ctx, ctx.merge_request()))


def create_note(ctx: ApiContext) -> Any:
    note = conversation.post_note(ctx.backend, ctx.merge_request(), ctx.user, ctx.required("body"))
    return Reply(ser.note(ctx.backend, note), 201)


def edit_note(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    note = conversation.edit_note(ctx.backend, mr, _note(ctx, mr), ctx.user, ctx.required("body"))
    return ser.note(ctx.backend, note)


def _reactions(ctx: ApiContext) -> tuple[list[AwardEmoji], int, str]:
    mr = ctx.merge_request()
    if "note_id" in ctx.path:
        return _note(ctx, mr).award_emoji, int(ctx.path["note_id"]), "Note"
    return mr.award_emoji, mr.id, "MergeRequest"


def list_awards(ctx: ApiContext) -> Any:
    reactions, awardable_id, kind = _reactions(ctx)
    return paginate(ctx, list(reactions), lambda e: ser.award(ctx.backend, e, awardable_id, kind))


def add_award(ctx: ApiContext) -> Any:
    reactions, awardable_id, kind = _reactions(ctx)
    emoji = conversation.award(ctx.backend, reactions, ctx.user, ctx.required("name"))
    return Reply(ser.award(ctx.backend, emoji, awardable_id, kind), 201)


def delete_award(ctx: ApiContext) -> Any:
    reactions, _, _ = _reactions(ctx)
    award_id = int(ctx.path["award_id"])
    match = next((e for e in reactions if e.id == award_id), None)
    if match is None:
        raise not_found("Award Emoji")
    if match.user_id != ctx.user.id and not ctx.user.is_admin:
        raise ApiError(403, "403 Forbidden")
    reactions.remove(match)
    return Response(status_code=204)


def list_discussions(ctx: ApiContext) -> Any:
    grouped = conversation.discussion_notes(ctx.backend, ctx.merge_request())
    return paginate(ctx, list(grouped.items()), lambda item: ser.discussion(ctx.backend, *item))


def create_discussion(ctx: ApiContext) -> Any:
    note = conversation.post_note(ctx.backend, ctx.merge_request(), ctx.user, ctx.required("body"),
                                  resolvable=True)
    return Reply(ser.discussion(ctx.backend, note.discussion_id, [note]), 201)


def resolve_discussion(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    notes = conversation.resolve_discussion(ctx.backend, mr, ctx.path["discussion_id"], ctx.user,
                                            ctx.flag("resolved", True))
    return ser.discussion(ctx.backend, ctx.path["discussion_id"], notes)


# -- approvals and MR pipelines ------------------------------------------------------
def approvals(ctx: ApiContext) -> Any:
    return ser.approvals(ctx.backend, ctx.merge_request(), ctx.user)


def approve(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    conversation.approve(ctx.backend, mr, ctx.user, ctx.text("sha"))
    return Reply(ser.approvals(ctx.backend, mr, ctx.user), 201)


def unapprove(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    conversation.unapprove(ctx.backend, mr, ctx.user)
    return Reply(ser.approvals(ctx.backend, mr, ctx.user), 201)


def mr_pipelines(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    refs = {mr.source_branch, f"refs/merge-requests/{mr.iid}/head"}
    with ctx.state.lock:
        shas = set(ctx.backend.repo(ctx.project()).log(mr.sha, mr.base_sha)) | {mr.sha}
        pipelines = [p for p in ctx.state.pipelines.values()
                     if p.project_id == mr.project_id and p.ref in refs and p.sha in shas]
    pipelines.sort(key=lambda p: p.id, reverse=True)
    return paginate(ctx, pipelines, lambda p: ser.pipeline_basic(ctx.backend, p))


def create_mr_pipeline(ctx: ApiContext) -> Any:
    mr = ctx.merge_request()
    pipeline = ctx.backend.runner.create(mr.project_id, f"refs/merge-requests/{mr.iid}/head", mr.sha,
                                         "0" * 40, "merge_request_event", ctx.user.id, mr.iid)
    return Reply(ser.pipeline_full(ctx.backend, pipeline), 201)
