"""The Starlette application: the REST routes under ``/api/v4`` plus git smart HTTP."""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from ..backend import Backend
from ..faults import FaultInjector, FaultMiddleware
from ..git_http import git_endpoint
from .delay import ResponseDelayMiddleware
from . import merge_requests as mrs
from . import pipelines as pipes
from . import projects as proj
from .http import Handler, SimMiddleware, endpoint

P = "/api/v4/projects/{pid:int}"
MR = P + "/merge_requests/{iid:int}"
NOTE = MR + "/notes/{note_id:int}"

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v4/user", proj.current_user),
    ("GET", "/api/v4/users", proj.list_users),
    ("GET", "/api/v4/users/{uid:int}", proj.get_user),
    ("GET", "/api/v4/version", proj.version),
    ("GET", "/api/v4/projects", proj.list_projects),
    ("GET", "/api/v4/merge_requests", mrs.list_all),
    ("GET", P, proj.get_project),
    ("GET", P + "/members/all", partial(proj.list_members, inherited=True)),
    ("GET", P + "/members/all/{uid:int}", partial(proj.get_member, inherited=True)),
    ("GET", P + "/members", partial(proj.list_members, inherited=False)),
    ("GET", P + "/members/{uid:int}", partial(proj.get_member, inherited=False)),
    ("GET", P + "/protected_branches", proj.list_protected),
    ("POST", P + "/protected_branches", proj.protect),
    ("GET", P + "/protected_branches/{name:path}", proj.get_protected),
    ("DELETE", P + "/protected_branches/{name:path}", proj.unprotect),
    ("GET", P + "/repository/branches", proj.list_branches),
    ("POST", P + "/repository/branches", proj.create_branch),
    ("GET", P + "/repository/branches/{branch:path}", proj.get_branch),
    ("DELETE", P + "/repository/branches/{branch:path}", proj.delete_branch),
    ("GET", P + "/repository/commits/{sha}", proj.get_commit),
    ("GET", P + "/repository/files/{file_path:path}/raw", proj.raw_file),
    ("GET", P + "/repository/files/{file_path:path}", proj.get_file),
    ("GET", P + "/hooks", proj.list_hooks),
    ("POST", P + "/hooks", proj.add_hook),
    ("DELETE", P + "/hooks/{hook_id:int}", proj.delete_hook),
    ("GET", P + "/merge_requests", mrs.list_project),
    ("POST", P + "/merge_requests", mrs.create),
    ("GET", MR, mrs.get),
    ("PUT", MR, mrs.update),
    ("PUT", MR + "/merge", mrs.merge),
    ("POST", MR + "/cancel_merge_when_pipeline_succeeds", mrs.cancel_auto_merge),
    ("PUT", MR + "/rebase", mrs.rebase),
    ("GET", MR + "/commits", mrs.commits),
    ("GET", MR + "/changes", mrs.changes),
    ("GET", MR + "/notes", mrs.list_notes),
    ("POST", MR + "/notes", mrs.create_note),
    ("GET", NOTE, mrs.get_note),
    ("PUT", NOTE, mrs.edit_note),
    ("GET", MR + "/award_emoji", mrs.list_awards),
    ("POST", MR + "/award_emoji", mrs.add_award),
    ("DELETE", MR + "/award_emoji/{award_id:int}", mrs.delete_award),
    ("GET", NOTE + "/award_emoji", mrs.list_awards),
    ("POST", NOTE + "/award_emoji", mrs.add_award),
    ("DELETE", NOTE + "/award_emoji/{award_id:int}", mrs.delete_award),
    ("GET", MR + "/discussions", mrs.list_discussions),
    ("POST", MR + "/discussions", mrs.create_discussion),
    ("PUT", MR + "/discussions/{discussion_id}", mrs.resolve_discussion),
    ("GET", MR + "/approvals", mrs.approvals),
    ("POST", MR + "/approve", mrs.approve),
    ("POST", MR + "/unapprove", mrs.unapprove),
    ("GET", MR + "/pipelines", mrs.mr_pipelines),
    ("POST", MR + "/pipelines", mrs.create_mr_pipeline),
    ("GET", P + "/pipelines", pipes.list_pipelines),
    ("POST", P + "/pipeline", pipes.create_pipeline),
    ("GET", P + "/pipelines/{pipeline_id:int}", pipes.get_pipeline),
    ("GET", P + "/pipelines/{pipeline_id:int}/jobs", pipes.list_jobs),
    ("POST", P + "/pipelines/{pipeline_id:int}/retry", pipes.retry),
    ("POST", P + "/pipelines/{pipeline_id:int}/cancel", pipes.cancel),
    ("GET", P + "/jobs/{job_id:int}", pipes.get_job),
]

def build_app(backend: Backend, faults: FaultInjector | None = None) -> Starlette:
    routes: list[Any] = [Route(path, endpoint(backend, handler), methods=[method])
                         for method, path, handler in ROUTES]
    routes.append(Route("/{repo:path}.git/{service:path}", git_endpoint, methods=["GET", "POST"]))
    middleware = [Middleware(SimMiddleware, backend=backend), Middleware(ResponseDelayMiddleware, backend=backend)]
    if faults is not None:
        middleware.append(Middleware(FaultMiddleware, faults=faults))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.backend = backend
    return app
