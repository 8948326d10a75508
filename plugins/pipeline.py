"""Rule `pipeline`: the head pipeline for the merge request's current SHA (or its merge ref) succeeded.

Only checked when merging: at enqueue time the pipeline does not matter yet, because the lane
rebases the MR and waits for a fresh pipeline anyway.
"""

from __future__ import annotations

from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import RuleContext, Verdict

RULE = "pipeline"

RUNNING = frozenset({"created", "pending", "running", "preparing", "waiting_for_resource", "scheduled"})
FAILED = frozenset({"failed", "canceled", "canceling"})
STALE_PIPELINE_STATUSES = frozenset({"ci_still_running", "ci_must_pass"})


@hookimpl
def merge_assist_describe_rule() -> RuleDescription:
    return RuleDescription(
        RULE,
        "The pipeline for the merge request's latest commit succeeded.",
        defaults={"skipped_is_success": False},
        option_help={
            "skipped_is_success": "treat a skipped pipeline as passed (also when the project "
            "allows merging on skipped pipelines)",
        },
    )


@hookimpl
def merge_assist_check_merge(context: RuleContext) -> Verdict:
    project, mr = context.project, context.merge_request
    pipeline = mr.head_pipeline
    # A merged-results pipeline tests the merge ref, whose SHA is not the MR head's: it belongs
    # to this MR by its ref, and GitLab's own status says whether it is the latest one.
    merged_results = pipeline is not None and pipeline.ref.startswith(f"refs/merge-requests/{mr.iid}/")
    if pipeline is not None and merged_results and pipeline.status == "success" and mr.detailed_merge_status in STALE_PIPELINE_STATUSES:
        return Verdict.wait(RULE, "waiting for the merged-results pipeline of the latest commit")
    if pipeline is None or (pipeline.sha != mr.sha and not merged_results):
        if not project.only_allow_merge_if_pipeline_succeeds:
            return Verdict.passed(RULE, "no pipeline required")
        return Verdict.wait(RULE, f"waiting for a pipeline on {mr.sha[:8]}")
    status = pipeline.status
    if status == "success":
        return Verdict.passed(RULE)
    if status == "skipped":
        skipped_ok = (
            context.options.get("skipped_is_success", False)
            or project.allow_merge_on_skipped_pipeline
            or not project.only_allow_merge_if_pipeline_succeeds
        )
        if skipped_ok:
            return Verdict.passed(RULE, "pipeline skipped")
        return Verdict.refuse(RULE, f"pipeline {pipeline.id} was skipped")
    if status in RUNNING:
        return Verdict.wait(RULE, "pipeline running")
    if status == "manual":
        return Verdict.wait(RULE, f"pipeline {pipeline.id} waits for a manual job")
    if status in FAILED:
        return Verdict.refuse(RULE, f"pipeline {pipeline.id} {status}")
    return Verdict.wait(RULE, f"pipeline {pipeline.id} is {status}")
