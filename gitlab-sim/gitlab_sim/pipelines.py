"""Scriptable CI: pipelines whose outcome and timing each test chooses.

A resolver maps every new (or retried) pipeline to a ``PipelinePlan``. The runner
starts at most ``capacity`` pipelines at once (the rest stay ``pending``) and moves
jobs through their statuses on the simulated clock. Every pipeline has the same job
layout, as fractions of the plan's duration:

    build  (stage build)  0.00 - 0.25
    lint   (stage test)   0.25 - 0.50   <- fails when a plan fails "early"
    test   (stage test)   0.25 - 1.00   <- fails when a plan fails "late"

so an early failure is reported (Job Hook) while the pipeline is still running.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .clock import SimClock
from .state import Job, Pipeline, State

FINISHED = frozenset({"success", "failed", "canceled", "skipped"})
ACTIVE = frozenset({"created", "pending", "running"})
JOB_LAYOUT: tuple[tuple[str, str, float, float], ...] = (
    ("build", "build", 0.0, 0.25),
    ("lint", "test", 0.25, 0.5),
    ("test", "test", 0.25, 1.0),
)


@dataclass(frozen=True)
class PipelinePlan:
    """How one pipeline behaves. Durations are simulated seconds."""

    outcome: str = "pass"  # pass | fail | skip | never_finish | flaky
    duration: float = 600.0
    fail_when: str = "late"  # early | late: which job fails, see module doc
    flaky_failures: int = 1  # flaky: fail this many attempts (per project+sha), then pass

    def __post_init__(self) -> None:
        if self.outcome not in {"pass", "fail", "skip", "never_finish", "flaky"}:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.fail_when not in {"early", "late"}:
            raise ValueError(f"unknown fail_when {self.fail_when!r}")


@dataclass(frozen=True)
class PipelineRequest:
    """What a resolver knows about the pipeline it plans."""

    project_path: str
    ref: str
    sha: str
    source: str
    attempt: int  # 1 for the first pipeline of this project+sha, 2 for the next, ...
    pipeline_id: int


Resolver = Callable[[PipelineRequest], PipelinePlan]


class PipelineListener(Protocol):
    def pipeline_changed(self, pipeline: Pipeline) -> None: ...

    def job_changed(self, pipeline: Pipeline, job: Job) -> None: ...


def default_resolver(_: PipelineRequest) -> PipelinePlan:
    return PipelinePlan()


class PipelineRunner:
    """Creates pipelines and plays their plans on the simulated clock."""

    def __init__(self, state: State, clock: SimClock, listener: PipelineListener,
                 capacity: int | None = None) -> None:
        self.state = state
        self.clock = clock
        self.listener = listener
        self.capacity = capacity
        self.resolver: Resolver = default_resolver
        self._attempts: Counter[tuple[int, str]] = Counter()
        self._plans: dict[int, PipelinePlan] = {}

    def create(self, project_id: int, ref: str, sha: str, before_sha: str, source: str,
               user_id: int | None, mr_iid: int | None = None) -> Pipeline:
        with self.state.lock:
            project = self.state.projects[project_id]
            now = self.clock.now()
            pipeline = Pipeline(id=self.state.next_id("pipeline"), iid=project.next_pipeline_iid,
                                project_id=project_id, ref=ref, sha=sha, before_sha=before_sha,
                                source=source, user_id=user_id, created_at=now, updated_at=now,
                                mr_iid=mr_iid)
            project.next_pipeline_iid += 1
            self.state.pipelines[pipeline.id] = pipeline
            self._plan_and_queue(pipeline)
            return pipeline

    def retry(self, pipeline: Pipeline) -> None:
        with self.state.lock:
            if pipeline.status not in {"failed", "canceled"}:
                return
            pipeline.generation += 1
            pipeline.finished_at = None
            pipeline.started_at = None
            self._plan_and_queue(pipeline)

    def cancel(self, pipeline: Pipeline) -> None:
        with self.state.lock:
            if pipeline.status not in ACTIVE:
                return
            pipeline.generation += 1
            self._finish(pipeline, "canceled", job_status="canceled")

    def finish(self, pipeline: Pipeline, status: str) -> None:
        """Force a final status now (tests); unfinished jobs take the same status."""
        if status not in FINISHED:
            raise ValueError(f"{status!r} is not a final pipeline status")
        with self.state.lock:
            pipeline.generation += 1
            self._finish(pipeline, status, job_status=status)

    def running_count(self) -> int:
        with self.state.lock:
            return sum(1 for p in self.state.pipelines.values() if p.status == "running")

    # -- internals ------------------------------------------------------------
    def _plan_and_queue(self, pipeline: Pipeline) -> None:
        key = (pipeline.project_id, pipeline.sha)
        self._attempts[key] += 1
        project = self.state.projects[pipeline.project_id]
        plan = self.resolver(PipelineRequest(project.path_with_namespace, pipeline.ref, pipeline.sha,
                                             pipeline.source, self._attempts[key], pipeline.id))
        if plan.outcome == "flaky":
            failing = self._attempts[key] <= plan.flaky_failures
            plan = PipelinePlan("fail" if failing else "pass", plan.duration, plan.fail_when)
        self._plans[pipeline.id] = plan
        now = self.clock.now()
        pipeline.jobs = [Job(self.state.next_id("job"), pipeline.id, name, stage, now)
                         for name, stage, _, _ in JOB_LAYOUT]
        for job in pipeline.jobs:
            self.state.jobs[job.id] = job
        if plan.outcome == "skip":
            self._finish(pipeline, "skipped", job_status="skipped")
            return
        self._set_status(pipeline, "pending")
        for job in pipeline.jobs:
            job.status = "pending"
        self._start_pending()

    def _start_pending(self) -> None:
        pending = sorted((p for p in self.state.pipelines.values() if p.status == "pending"),
                         key=lambda p: p.id)
        for pipeline in pending:
            if self.capacity is not None and self.running_count() >= self.capacity:
                return
            self._start(pipeline)

    def _start(self, pipeline: Pipeline) -> None:
        plan = self._plans[pipeline.id]
        pipeline.started_at = self.clock.now()
        self._set_status(pipeline, "running")
        generation = pipeline.generation
        self._step(pipeline.id, generation, 0.0)  # first jobs start with the pipeline
        if plan.outcome == "never_finish":
            return
        boundaries = sorted({t for _, _, start, end in JOB_LAYOUT for t in (start, end)} - {0.0})
        for fraction in boundaries:
            self.clock.call_later(fraction * plan.duration,
                                  lambda f=fraction: self._step(pipeline.id, generation, f))

    def _step(self, pipeline_id: int, generation: int, fraction: float) -> None:
        with self.state.lock:
            pipeline = self.state.pipelines[pipeline_id]
            if pipeline.generation != generation or pipeline.status != "running":
                return
            plan = self._plans[pipeline_id]
            failing_job = {"early": "lint", "late": "test"}[plan.fail_when] if plan.outcome == "fail" else None
            for job, (_, _, start, end) in zip(pipeline.jobs, JOB_LAYOUT):
                if end == fraction and job.status == "running":
                    failed = job.name == failing_job
                    self._set_job(pipeline, job, "failed" if failed else "success",
                                  "script_failure" if failed else None)
            for job, (_, _, start, _) in zip(pipeline.jobs, JOB_LAYOUT):
                if start == fraction and job.status == "pending":
                    self._set_job(pipeline, job, "running")
            if all(job.status in FINISHED for job in pipeline.jobs):
                failed = any(job.status == "failed" for job in pipeline.jobs)
                self._finish(pipeline, "failed" if failed else "success", job_status=None)

    def _finish(self, pipeline: Pipeline, status: str, job_status: str | None) -> None:
        if job_status is not None:
            for job in pipeline.jobs:
                if job.status not in FINISHED:
                    self._set_job(pipeline, job, job_status)
        pipeline.finished_at = self.clock.now()
        self._set_status(pipeline, status)
        self._start_pending()

    def _set_status(self, pipeline: Pipeline, status: str) -> None:
        pipeline.status = status
        pipeline.updated_at = self.clock.now()
        self.listener.pipeline_changed(pipeline)

    def _set_job(self, pipeline: Pipeline, job: Job, status: str, failure_reason: str | None = None) -> None:
        now = self.clock.now()
        if status == "running":
            job.started_at = now
        elif status in FINISHED:
            job.finished_at = now
        job.status = status
        job.failure_reason = failure_reason
        self.listener.job_changed(pipeline, job)
