"""Built-in rule plugins. Each is an ordinary pluggy plugin that an installed plugin can
replace by registering under the same name (see `rules.plugins`)."""

from __future__ import annotations

from types import ModuleType

from merge_assist.plugins import (
    approvals,
    authorization,
    commands,
    conflicts,
    discussions,
    draft,
    freeze,
    labels,
    mr_state,
    pause,
    pipeline,
    priority_labels,
    target_branch,
)

# Order is the order of rules in status and help: cheap, obvious refusals first.
BUILTIN_PLUGINS: tuple[ModuleType, ...] = (
    mr_state,
    draft,
    target_branch,
    labels,
    conflicts,
    discussions,
    approvals,
    pipeline,
    freeze,
    pause,
    priority_labels,
    authorization,
    commands,
)
