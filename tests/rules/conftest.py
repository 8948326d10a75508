"""Shared builders for the rules-engine tests: plain data, no GitLab."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable

import pytest

from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Approvals, MergeRequest, Pipeline, Project, RuleContext
from merge_assist.rules.plugins import build_plugin_manager

SHA = "a" * 40
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # a Wednesday


def base_context() -> RuleContext:
    project = Project(id=7, path="team/app")
    mr = MergeRequest(
        project_id=7, iid=42, title="ABC-123 add login", author_id=1, author_username="alice",
        source_branch="feature", target_branch="main", state="opened", sha=SHA,
        head_pipeline=Pipeline(id=900, sha=SHA, status="success"),
    )
    return RuleContext(project=project, merge_request=mr, approvals=Approvals(), options={}, now=NOW)


ContextFactory = Callable[..., RuleContext]


@pytest.fixture
def make_context() -> ContextFactory:
    """make_context(mr={...}, project={...}, approvals=Approvals(...), options={...}, ...)."""

    def build(mr: dict[str, Any] | None = None, project: dict[str, Any] | None = None, **fields: Any) -> RuleContext:
        context = base_context()
        return replace(
            context,
            merge_request=replace(context.merge_request, **(mr or {})),
            project=replace(context.project, **(project or {})),
            **fields,
        )

    return build


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
def make_engine(metrics: RecordingMetrics) -> Callable[..., RuleEngine]:
    """make_engine(*extra_plugins, builtins=BUILTIN_PLUGINS) → RuleEngine (no entry points)."""

    def build(*extra: object, builtins=BUILTIN_PLUGINS) -> RuleEngine:
        pm = build_plugin_manager(builtins, load_entry_points=False, extra=extra)
        return RuleEngine(pm, metrics)

    return build


@pytest.fixture
def engine(make_engine) -> RuleEngine:
    return make_engine()
