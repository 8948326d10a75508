"""A randomized stress run: 500 random commands and GitLab events (merge, cancel, priority, retry,
pushes, closes, failing and passing pipelines) across two real worker processes on PostgreSQL.

Checked from the audit log afterwards: no cancelled entry merged, no transition outside the
table, every command's audit record before its effects, and every entry finished.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from gitlab_sim import PipelinePlan, PipelineRequest, Simulator
from merge_assist.rules.lane_machine import EntryState, Mover, allowed
from merge_assist.storage.audit import AuditEntry
from tests.e2e.harness import World, logs, make_world, start_production, start_worker
from tests.helpers import wait_for

SEED = 20261130
OPERATIONS = 500
MRS = 24
PIPELINE = 300.0


def pipeline_plan(failing: set[str]) -> object:
    def plan(request: PipelineRequest) -> PipelinePlan:
        if request.ref in failing:
            return PipelinePlan(outcome="fail", fail_when="early", duration=PIPELINE)
        return PipelinePlan(duration=PIPELINE)

    return plan


def check_audit(records: list[AuditEntry]) -> dict[str, int]:
    """Every invariant the issue names, from the audit log alone (records in commit order)."""
    figures: dict[str, int] = defaultdict(int)
    by_target: dict[str, list[AuditEntry]] = defaultdict(list)
    for record in records:
        by_target[record.target].append(record)
    for target, trail in by_target.items():
        received: list[AuditEntry] = []
        entry_states: list[str] = []
        for record in trail:
            if record.action.startswith("command:") and record.outcome == "received":
                received.append(record)
            elif record.action == "enqueue" and record.outcome == "queued":
                assert received, f"{target}: an entry was queued before any command asked for it"
                entry_states = ["queued"]
                figures["entries"] += 1
            elif record.action == "transition":
                source, _, rest = record.detail.partition(" -> ")
                destination = rest.split(":", 1)[0]
                mover = Mover.LANE if record.actor == "merge-assist" else Mover.COMMAND
                assert allowed(EntryState(source), EntryState(destination), mover), \
                    f"{target}: {record.actor} moved {source} -> {destination}, which the table forbids"
                if mover is Mover.COMMAND:
                    assert any(r.actor == record.actor and r.action == "command:cancel" for r in received), \
                        f"{target}: a person's move came before their command's audit record"
                assert entry_states and entry_states[-1] == source, f"{target}: {source} is not where the entry was"
                entry_states.append(destination)
                figures["transitions"] += 1
                if destination in ("merged", "cancelled", "failed"):
                    assert not ({"merged", "cancelled"} <= set(entry_states)), f"{target}: cancelled and merged"
                    figures[destination] += 1
    return dict(figures)


@pytest.mark.slow
def test_random_interleavings_keep_every_promise(sim: Simulator, tmp_path: Path, pg_url: str, redis_url: str,
                                                  redis_prefix: str) -> None:
    world: World = make_world(sim, merge_method="merge")
    failing: set[str] = set()
    sim.set_pipeline_plan(pipeline_plan(failing))  # type: ignore[arg-type]
    workdir = tmp_path / "bot"
    workdir.mkdir()
    bot = start_production(sim, world, pg_url, redis_url, redis_prefix, workdir)
    start_worker(bot, log_name="worker-2.log")
    rng = random.Random(SEED)
    iids = {world.mr(f"stress-{n}"): f"stress-{n}" for n in range(MRS)}
    counts: dict[str, int] = defaultdict(int)
    try:
        for step in range(OPERATIONS):
            iid = rng.choice(list(iids))
            branch = iids[iid]
            if world.state(iid) != "opened":
                iid = world.mr(f"stress-{MRS + step}")
                iids[iid] = branch = f"stress-{MRS + step}"
            kind = rng.choices(["merge", "cancel", "priority", "retry", "push", "close", "ci", "clock"],
                               weights=[6, 3, 2, 2, 2, 1, 2, 5])[0]
            counts[kind] += 1
            if kind == "merge":
                world.comment(iid, world.dev, "/merge-assist merge")
            elif kind == "cancel":
                world.comment(iid, world.dev, "/merge-assist cancel")
            elif kind == "priority":
                world.comment(iid, world.dev, f"/merge-assist priority {rng.choice(['low', 'normal'])}")
            elif kind == "retry":
                world.comment(iid, world.dev, "/merge-assist retry")
            elif kind == "push":
                sim.commit(world.project, branch, {f"{branch}-{step}.txt": f"{step}\n"}, f"Push {step}", world.dev)
            elif kind == "close":
                sim.close_mr(world.project, iid, world.dev)
            elif kind == "ci":
                (failing.add if rng.random() < 0.3 else failing.discard)(branch)
            else:
                sim.clock.advance(rng.uniform(10, PIPELINE / 2))
            time.sleep(rng.uniform(0, 0.03))

        def settled() -> bool:
            sim.clock.advance(120)
            return not bot.store.queue.all_entries(active_only=True)

        wait_for(settled, timeout=120, interval=0.3, message="every entry to finish")
        figures = check_audit(list(reversed(bot.store.audit.entries(limit=100000))))
        merged_in_gitlab = sum(1 for iid in iids if world.state(iid) == "merged")
        print(f"\nstress: {OPERATIONS} operations {dict(counts)}; audit {figures}; "
              f"MRs merged in GitLab {merged_in_gitlab}")
        merged_by_bot = sorted(e.mr_iid for e in bot.store.queue.all_entries(limit=100000) if e.state is EntryState.MERGED)
        merged_by_gitlab = sorted(iid for iid in iids if world.state(iid) == "merged")
        assert merged_by_bot == merged_by_gitlab, (
            f"merged for the bot only: {sorted(set(merged_by_bot) - set(merged_by_gitlab))}, "
            f"twice: {sorted({i for i in merged_by_bot if merged_by_bot.count(i) > 1})}, "
            f"in GitLab only: {sorted(set(merged_by_gitlab) - set(merged_by_bot))}")
        assert figures.get("merged", 0) == merged_in_gitlab
        finished = sum(figures.get(state, 0) for state in ("merged", "cancelled", "failed"))
        assert figures.get("entries", 0) == finished, "an entry never finished"
        assert figures.get("entries", 0) >= 10 and figures.get("cancelled", 0) >= 1
    except BaseException:
        print(logs(bot))
        raise
    finally:
        bot.stop()
