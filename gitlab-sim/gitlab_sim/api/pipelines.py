"""Routes under ``/pipelines`` and ``/jobs``."""

from __future__ import annotations

from typing import Any

from .. import serializers as ser
from ..errors import ApiError
from ..state import Pipeline
from .http import ApiContext, Reply, paginate


def _pipeline(ctx: ApiContext) -> Pipeline:
    project = ctx.project()
    return ctx.owned(ctx.state.pipelines, "pipeline_id", lambda p: p.project_id == project.id, "")


def list_pipelines(ctx: ApiContext) -> Any:
    project = ctx.project()
    with ctx.state.lock:
        pipelines = [p for p in ctx.state.pipelines.values() if p.project_id == project.id
                     and all(ctx.text(f) in (None, getattr(p, f)) for f in ("ref", "sha", "status", "source"))]
    pipelines.sort(key=lambda p: p.id, reverse=ctx.text("sort", "desc") != "asc")
    return paginate(ctx, pipelines, lambda p: ser.pipeline_basic(ctx.backend, p))


def get_pipeline(ctx: ApiContext) -> Any:
    return ser.pipeline_full(ctx.backend, _pipeline(ctx))


def list_jobs(ctx: ApiContext) -> Any:
    pipeline = _pipeline(ctx)
    scope = ctx.params.get("scope")
    wanted = set(scope if isinstance(scope, list) else [scope]) if scope else None
    jobs = [j for j in pipeline.jobs if wanted is None or j.status in wanted]
    return paginate(ctx, jobs, lambda j: ser.job(ctx.backend, pipeline, j))


def create_pipeline(ctx: ApiContext) -> Any:
    project = ctx.project()
    ref = ctx.required("ref")
    sha = ctx.backend.branch_head(project, ref)
    if sha is None:
        raise ApiError(400, {"base": ["Reference not found"]})
    pipeline = ctx.backend.runner.create(project.id, ref, sha, "0" * 40, "api", ctx.user.id)
    return Reply(ser.pipeline_full(ctx.backend, pipeline), 201)


def retry(ctx: ApiContext) -> Any:
    pipeline = _pipeline(ctx)
    ctx.backend.runner.retry(pipeline)
    return Reply(ser.pipeline_full(ctx.backend, pipeline), 201)


def cancel(ctx: ApiContext) -> Any:
    pipeline = _pipeline(ctx)
    ctx.backend.runner.cancel(pipeline)
    return Reply(ser.pipeline_full(ctx.backend, pipeline), 200)


def get_job(ctx: ApiContext) -> Any:
    project = ctx.project()
    job = ctx.owned(ctx.state.jobs, "job_id",
                    lambda j: ctx.state.pipelines[j.pipeline_id].project_id == project.id, "")
    return ser.job(ctx.backend, ctx.state.pipelines[job.pipeline_id], job)
