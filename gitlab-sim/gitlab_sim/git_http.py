"""Git smart HTTP (clone, fetch, push) by running ``git http-backend`` as a CGI.

Auth is GitLab's: HTTP Basic with any username and a user's token as the password.
Pushes run GitLab-like server hooks (``receive_hooks``: protected branches, push
options). After a receive-pack, every branch git updated goes through
``pushes.branch_updated`` — the same path as an API commit, so pushes create
pipelines, update open merge requests and mark merged the ones they land.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .backend import Backend
from .mergeability import effective_access
from .pushes import branch_updated
from .receive_hooks import PushReport, push_environment, read_report
from .state import DEVELOPER, REPORTER, Project, User

CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitLab"'}


def basic_auth_user(backend: Backend, request: Request) -> User | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        _, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return backend.state.user_by_token(password)


def _project_of(backend: Backend, repo_path: str) -> Project | None:
    return backend.state.project_by_path(repo_path.removesuffix(".git"))


async def git_endpoint(request: Request) -> Response:
    backend: Backend = request.app.state.backend
    repo_path: str = request.path_params["repo"]
    project = _project_of(backend, repo_path)
    if project is None:
        return Response("Not Found", status_code=404)
    user = basic_auth_user(backend, request)
    if user is None:
        return Response("HTTP Basic: Access denied", status_code=401, headers=CHALLENGE)
    request.scope["sim_user"] = user
    pushing = "git-receive-pack" in (request.url.path + str(request.query_params.get("service", "")))
    needed = DEVELOPER if pushing else REPORTER
    if effective_access(backend.state, project, user) < needed:
        return Response("You are not allowed to access this repository", status_code=403)
    body = await request.body()
    return await run_in_threadpool(_serve, backend, project, user, request, body, pushing)


def _serve(backend: Backend, project: Project, user: User, request: Request, body: bytes,
           pushing: bool) -> Response:
    env = {
        **os.environ,
        "GIT_PROJECT_ROOT": str(backend.repos_root), "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{project.path_with_namespace}.git/{request.path_params['service']}",
        "REQUEST_METHOD": request.method, "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": user.username, "REMOTE_ADDR": "127.0.0.1",
        "GIT_HTTP_MAX_REQUEST_BUFFER": "100M", "GIT_CONFIG_NOSYSTEM": "1",
    }
    if "content-encoding" in request.headers:
        env["HTTP_CONTENT_ENCODING"] = request.headers["content-encoding"]
    if "git-protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["git-protocol"]
    with tempfile.TemporaryDirectory(prefix="sim-push-") as tmp:
        report = Path(tmp) / "report"
        if pushing:
            env.update(push_environment(backend.state, project, user, backend.git_hooks_dir, report))
        result = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env,
                                check=False)
        pushed = read_report(report)
    response = _cgi_response(result.stdout)
    if pushed.updates:
        _after_push(backend, project, user, pushed)
    return response


def _cgi_response(output: bytes) -> Response:
    head, _, payload = output.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = output.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    media_type = headers.pop("Content-Type", None)
    return Response(payload, status_code=status, headers=headers, media_type=media_type)


def _after_push(backend: Backend, project: Project, user: User, pushed: PushReport) -> None:
    """Run GitLab's post-receive for each updated branch; targets of open MRs last, so that
    MRs whose rebased commits arrive in the same push are already at their new heads."""
    with backend.state.lock:
        backend.refs_changed(project)
        targets = {mr.target_branch for mr in backend.state.project_merge_requests(project.id)
                   if mr.state == "opened"}
        branches = [(branch, u) for u in pushed.updates if (branch := u.branch) is not None]
        for branch, update in sorted(branches, key=lambda item: item[0] in targets):
            branch_updated(backend, project, branch, update.before, update.after, user,
                           push_options=pushed.options)
