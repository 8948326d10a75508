"""Markdown for `/merge-assist help` and `/merge-assist status`, generated from what the
registered plugins declare (model: Prow's HelpProvider), so help never drifts from the code."""

from __future__ import annotations

from typing import Protocol

from merge_assist.rules.commands import CommandSpec
from merge_assist.rules.hookspecs import RuleDescription
from merge_assist.rules.model import Decision, Outcome

OUTCOME_BADGES = {Outcome.PASS: "✅ pass", Outcome.WAIT: "⏳ wait", Outcome.REFUSE: "⛔ refuse"}
SUMMARY_BY_OUTCOME = {
    Outcome.PASS: "ready to merge",
    Outcome.WAIT: "waiting",
    Outcome.REFUSE: "refused",
}


class HelpSource(Protocol):
    """What help needs from the engine (`rules.engine.RuleEngine` fits)."""

    def commands(self) -> dict[str, CommandSpec]: ...

    def describe_rules(self) -> list[RuleDescription]: ...


def _cell(text: str) -> str:
    """Table cells must not break the Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _command_section(spec: CommandSpec) -> list[str]:
    help_ = spec.help
    lines = [f"#### `{help_.usage}`", "", help_.summary, "", f"**Who can use it:** {help_.who_can_use}"]
    if help_.examples:
        lines += ["", "**Examples:**", ""] + [f"- `{example}`" for example in help_.examples]
    return lines + [""]


def render_help(engine: HelpSource) -> str:
    """Every command (usage, who can use it, examples) and every rule (summary, options)."""
    lines = ["### Merge Assist commands", ""]
    for spec in engine.commands().values():
        lines += _command_section(spec)
    lines += ["### Rules checked before merging", "", "| rule | checks |", "| --- | --- |"]
    lines += [f"| `{rule.name}` | {_cell(rule.summary)} |" for rule in engine.describe_rules()]
    options = [
        f"- `rules.{description.name}.{key}`: {text}"
        for description in engine.describe_rules()
        for key, text in description.option_help.items()
    ]
    if options:
        lines += ["", "Options for `.merge-assist.yml` on the default branch:", ""] + options
    return "\n".join(lines) + "\n"


def render_status(decision: Decision, position: int | None, lane_size: int | None) -> str:
    """Every rule's verdict for one MR as a table, with its position in the lane (1 = next)."""
    summary = SUMMARY_BY_OUTCOME[decision.outcome]
    if position is None:
        place = "not queued"
    elif lane_size is None:
        place = f"position {position} in the queue"
    else:
        place = f"position {position} of {lane_size} in the queue"
    lines = [f"**Merge Assist status:** {summary}, {place}.", ""]
    if decision.outcome is not Outcome.PASS:
        lines += [f"Blocked by {decision.explain()}.", ""]
    lines += ["| rule | verdict | reason |", "| --- | --- | --- |"]
    for verdict in decision.verdicts:
        lines.append(f"| `{verdict.rule}` | {OUTCOME_BADGES[verdict.outcome]} | {_cell(verdict.reason)} |")
    return "\n".join(lines) + "\n"
