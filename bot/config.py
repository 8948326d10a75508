"""Effective rule options per project: server config, project settings and `.merge-assist.yml`."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from merge_assist.adapters.read_cache import LocalEpochs, config_scope
from merge_assist.rules.config import ConfigError, ConfigResult, RepoConfigCache, resolve_config
from merge_assist.rules.engine import RuleEngine, RuleOptions
from merge_assist.rules.feedback import Feedback
from merge_assist.rules.model import MergeRequest, Project
from merge_assist.rules.ports import GitLabPort, ReadEpochs
from merge_assist.storage.projects import ProjectRepository

RECHECK_SECONDS = 900.0
"""Push hooks that touch `.merge-assist.yml` invalidate at once; this only covers lost hooks."""


def load_server_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(top level)", "expected a mapping")
    return data


class ProjectConfig:
    """`rules.flow.ConfigProvider`: layered options per project.

    The result is kept until a push to the default branch touches `.merge-assist.yml` (bot.dispatch
    bumps the config scope's epoch, which every process sees), or for 15 minutes in case that
    webhook was lost; the repo file itself is cached per commit SHA by RepoConfigCache.
    """

    def __init__(self, gitlab: GitLabPort, engine: RuleEngine, projects: ProjectRepository,
                 feedback: Feedback, server: Mapping[str, Any] | None = None,
                 recheck_seconds: float = RECHECK_SECONDS, epochs: ReadEpochs | None = None) -> None:
        self._cache = RepoConfigCache(gitlab, engine)
        self._projects = projects
        self._feedback = feedback
        self._server = dict(server or {})
        self._recheck = recheck_seconds
        self._epochs: ReadEpochs = epochs or LocalEpochs()
        self._results: dict[int, tuple[float, str, dict[str, Any], ConfigResult]] = {}
        self._lock = threading.Lock()
        # A broken server config is an operator error: refuse to start, naming the key.
        resolve_config(engine, self._server, None)

    def options_for(self, project: Project, mr: MergeRequest | None = None) -> RuleOptions:
        now = time.monotonic()
        epoch = self._epochs.current(config_scope(project.id))
        view = self._projects.get(project.id)
        # Read from the database each time, so an admin's change applies in every process at once.
        project_settings = view.settings if view else {}
        with self._lock:
            cached = self._results.get(project.id)
        if cached is not None and now - cached[0] < self._recheck and cached[1:3] == (epoch, project_settings):
            result = cached[3]
        else:
            # Without an MR to post it on (the lane reading its merge mode), a new error stays
            # unreported and nothing is kept, so the next caller with an MR reports it.
            result = self._cache.load(project, self._server, project_settings, report=mr is not None)
            if result.error is not None and mr is not None:
                error = result.error
                self._feedback.comment(
                    project.id, mr.iid,
                    f":warning: Configuration error in `{error.file}` at `{error.key}`: {error.reason}. "
                    "The last valid configuration stays in force until it is fixed.")
            if not result.error_pending:
                with self._lock:
                    self._results[project.id] = (now, epoch, project_settings, result)
        return {**result.effective, **result.settings}
