"""A GitLab simulator: REST API v4 subset, git smart HTTP, scriptable CI and webhooks."""

from .clock import SimClock
from .driver import Simulator
from .pipelines import PipelinePlan, PipelineRequest
from .tree_ci import TreeCI, TreeVerdict, markers_and_calls
from .webhooks import WebhookSettings

__all__ = ["PipelinePlan", "PipelineRequest", "SimClock", "Simulator", "TreeCI", "TreeVerdict",
           "WebhookSettings", "markers_and_calls"]
