"""Scriptable CI: pipelines whose outcome and timing each test chooses.

A resolver maps every new (or retried) pipeline to a ``PipelinePlan``. The runner
starts at most ``capacity`` pipelines at once (the rest stay ``pending``) and moves
jobs through their statuses on the simulated clock. Every pipeline has the same job
layout, as fractions of the plan's duration:

    build  (stage build)  0.00 - 0.25
    lint   (stage test)   0.25 - 0.50   <- fails when a plan fails "early"
    test   (stage test)   0.25 - 1.00   <- fails when a plan fails "late"

so an early failure is reported (Job Hook) while the pipeline is still running.
A plan may instead say *when* its failure shows (``fail_at``, a fraction of the
duration): up to 0.25 the build job fails and the test stage is skipped, so the
pipeline fails at once; later, lint fails at that moment while test runs on to the
end (as GitLab lets the other jobs of a stage finish).

The runner limit is global: one pool of ``capacity`` runners shared by every
project, like a self-hosted GitLab's instance runners.
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
STAGES = ("build", "test")
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
    fail_at: float | None = None  # fraction of duration when the failing job ends; overrides fail_when

    def __post_init__(self) -> None:
        if self.outcome not in {"pass", "fail", "skip", "never_finish", "flaky"}:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.fail_when not in {"early", "late"}:
            raise ValueError(f"unknown fail_when {self.fail_when!r}")
        if self.fail_at is not None and not 0.0 < self.fail_at <= 1.0:
            raise ValueError(f"fail_at must be in (0, 1], got {self.fail_at!r}")


@dataclass(frozen=True)
class JobTiming:
    """One job of a planned pipeline: when it starts and ends (fractions) and whether it fails."""

    name: str
    stage: str
    start: float
    end: float
    fails: bool


def job_timings(plan: PipelinePlan) -> tuple[JobTiming, ...]:
    """The job layout of ``plan``, with its failing job (if any) and that job's end."""
    failing, fail_end = None, None
    if plan.outcome == "fail" and plan.fail_at is None:
        failing = {"early": "lint", "late": "test"}[plan.fail_when]
    elif plan.outcome == "fail" and plan.fail_at is not None:
        failing = "build" if plan.fail_at <= 0.25 else "lint"
        fail_end = plan.fail_at
    return tuple(JobTiming(name, stage, start, fail_end if name == failing and fail_end else end,
                           name == failing)
                 for name, stage, start, end in JOB_LAYOUT)


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
        self._timings: dict[int, tuple[JobTiming, ...]] = {}

    def create(self, project_id: int, ref: str, sha: str, before_sha: str, source: str,
               user_id: int | None, mr_iid: int | None = None, *, skipped: bool = False) -> Pipeline:
        """A new pipeline; ``skipped`` records one with no jobs, as GitLab does for ``ci.skip``."""
        with self.state.lock:
            project = self.state.projects[project_id]
            now = self.clock.now()
            pipeline = Pipeline(id=self.state.next_id("pipeline"), iid=project.next_pipeline_iid,
                                project_id=project_id, ref=ref, sha=sha, before_sha=before_sha,
                                source=source, user_id=user_id, created_at=now, updated_at=now,
                                mr_iid=mr_iid)
            project.next_pipeline_iid += 1
            self.state.pipelines[pipeline.id] = pipeline
            if skipped:
                self._finish(pipeline, "skipped", job_status=None)
            else:
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
            plan = PipelinePlan("fail" if failing else "pass", plan.duration, plan.fail_when,
                                fail_at=plan.fail_at)
        self._plans[pipeline.id] = plan
        self._timings[pipeline.id] = job_timings(plan)
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
        timings = self._timings[pipeline.id]
        boundaries = sorted({t for job in timings for t in (job.start, job.end)} - {0.0})
        for fraction in boundaries:
            self.clock.call_later(fraction * plan.duration,
                                  lambda f=fraction: self._step(pipeline.id, generation, f))

    def _step(self, pipeline_id: int, generation: int, fraction: float) -> None:
        with self.state.lock:
            pipeline = self.state.pipelines[pipeline_id]
            if pipeline.generation != generation or pipeline.status != "running":
                return
            timings = self._timings[pipeline_id]
            for job, timing in zip(pipeline.jobs, timings):
                if timing.end == fraction and job.status == "running":
                    self._set_job(pipeline, job, "failed" if timing.fails else "success",
                                  "script_failure" if timing.fails else None)
            failed_stages = [STAGES.index(j.stage) for j in pipeline.jobs if j.status == "failed"]
            for job, timing in zip(pipeline.jobs, timings):
                if job.status != "pending":
                    continue
                if failed_stages and STAGES.index(job.stage) > min(failed_stages):
                    self._set_job(pipeline, job, "skipped")
                elif timing.start == fraction:
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
