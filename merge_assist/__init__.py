"""Merge Assist: a self-hosted GitLab merge queue with a pluggy rules engine.

This module is the public plugin API. A plugin imports only from here::

    from merge_assist import hookimpl, Verdict, RuleContext, RuleDescription

Everything else (`merge_assist.bot`, `merge_assist.storage`, …) is internal and may change
between releases. The hooks a plugin can implement are documented in
`merge_assist.rules.hookspecs`.
"""

from __future__ import annotations

from merge_assist.rules.commands import (
    CommandInvocation,
    CommandRefused,
    CommandReply,
    CommandServices,
    CommandSpec,
)
from merge_assist.rules.hookspecs import (
    ACCESS_DEVELOPER,
    ACCESS_GUEST,
    AuthDecision,
    AuthRequest,
    OptionError,
    RuleDescription,
    hookimpl,
    hookspec,
)
from merge_assist.rules.model import (
    Actor,
    Approvals,
    CommandHelp,
    MergeRequest,
    Outcome,
    Pipeline,
    Priority,
    Project,
    RuleContext,
    Verdict,
)

__all__ = [
    "ACCESS_DEVELOPER",
    "ACCESS_GUEST",
    "Actor",
    "Approvals",
    "AuthDecision",
    "AuthRequest",
    "CommandHelp",
    "CommandInvocation",
    "CommandRefused",
    "CommandReply",
    "CommandServices",
    "CommandSpec",
    "MergeRequest",
    "OptionError",
    "Outcome",
    "Pipeline",
    "Priority",
    "Project",
    "RuleContext",
    "RuleDescription",
    "Verdict",
    "hookimpl",
    "hookspec",
]
