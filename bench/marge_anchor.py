"""The anchor row of bench/trains.py: the real marge-bot (PyPI) merging a small workload on the simulator.

marge-bot runs in real time (its waits are wall-clock sleeps), so the simulator does too and one
pipeline takes `d_seconds` of wall time. The MRs are those of bench/train_model.py for the seed
(same bad MRs, same failure offsets); each is created before marge-bot starts, with its own
pipeline already passed, and assigned to marge-bot at its arrival time, which is how one asks
marge-bot to merge. The project is fast-forward only (marge-bot rebases each MR with git, pushes it,
waits for its pipeline, merges), and the target moves before the start, so every MR is rebased and
re-tested. marge-bot's own waits are wall-clock: 30 s between MRs, a CI poll every 10 s and a few
fixed 2-5 s pauses, about 0.4 D per MR at D = 90 s that a 20-minute pipeline would hide.

Figures as in the train rows (`train_rows.Result`): time from the assignment to the merge in D, pipelines per merged MR
(those on MR branches after the start), GitLab API requests per merged MR (marge-bot's token).
"""

from __future__ import annotations

import time
from pathlib import Path

from gitlab_sim import PipelinePlan, PipelineRequest, SimClock, Simulator, TreeCI
from gitlab_sim.state import DEVELOPER, MAINTAINER, Project, User

from marge_compat import marge_process
from train_model import Arrival
from train_rows import Result, Workload


def run_anchor(marge_app: Path, workdir: Path, workload: Workload, mrs: list[Arrival], d_seconds: float) -> Result:
    started = time.monotonic()
    sim = Simulator(workdir / "sim", SimClock.real_time(), rebase_delay=0.2).start()
    try:
        marge = sim.create_user("marge-bot", "Marge Bot")
        dev = sim.create_user("alice", "Alice")
        project = sim.create_project("acme/app", merge_method="ff", files={"README.md": "anchor\n"})
        sim.add_member(sim.create_group("acme"), marge, MAINTAINER)
        sim.add_member(project, dev, DEVELOPER)
        sim.set_runner_capacity(workload.runners)
        sim.set_pipeline_plan(PipelinePlan("pass", duration=0.05))  # the MRs' own pipelines, before the run
        iids = [sim.create_merge_request(project, f"mr-{mr.mr_id}", author=dev, title=f"Change {mr.mr_id}",
                                         files={f"src/change{mr.mr_id}.txt": "BROKEN\n" if mr.bad else "ok\n"}).iid
                for mr in mrs]
        sim.commit(project, "main", {"other.txt": "the target moved on\n"}, author=dev)
        time.sleep(0.5)
        before = {p.id for p in sim.pipelines(project)}
        sim.set_pipeline_plan(_tree_ci(sim, mrs, d_seconds))
        sim.reset_request_log()
        assigned = _drive(sim, project, marge, dev, marge_app, workdir, mrs, iids, d_seconds)
        bad = {iid for iid, mr in zip(iids, mrs) if mr.bad}
        final = {iid: sim.merge_request(project, iid) for iid in iids}
        merged = [iid for iid, mr in final.items() if mr.state == "merged"]
        return Result(
            workload, "marge-bot 1.4",
            ttm=[((final[iid].merged_at or 0.0) - assigned[iid]) / d_seconds for iid in merged if iid not in bad],
            pipelines=len([p for p in sim.pipelines(project) if p.id not in before and p.ref.startswith("mr-")
                           and p.status != "skipped"]),
            api_requests=len([r for r in sim.request_log("api") if r.user_id == marge.id]),
            merged=len(merged), bad_merged=len([iid for iid in merged if iid in bad]),
            good_not_merged=len([iid for iid in iids if iid not in bad and iid not in merged]),
            real_seconds=time.monotonic() - started)
    finally:
        sim.stop()


def _tree_ci(sim: Simulator, mrs: list[Arrival], d_seconds: float) -> TreeCI:
    def fail_offset(request: PipelineRequest) -> float:
        causes = ci.verdict(request.project_path, request.sha).all_causes
        offsets = [mr.fail_after for mr in mrs for cause in causes if cause.startswith(f"src/change{mr.mr_id}.txt ")]
        return min(offsets, default=1.0)

    ci = TreeCI(sim, duration=d_seconds, fail_at=fail_offset)
    return ci


def _drive(sim: Simulator, project: Project, marge: User, dev: User, marge_app: Path, workdir: Path,
           mrs: list[Arrival], iids: list[int], d_seconds: float) -> dict[int, float]:
    """Assign each MR at its arrival; until every MR is merged or marge-bot let go of it."""
    start = sim.clock.now()
    assigned: dict[int, float] = {}
    deadline = time.monotonic() + (len(mrs) * 3 + 5) * d_seconds
    with marge_process(marge_app, sim.url, marge.token, workdir, ["--ci-timeout", f"{int(3 * d_seconds / 60) + 1}min"]) as process:
        while time.monotonic() < deadline and process.poll() is None:
            for mr, iid in zip(mrs, iids):
                if iid not in assigned and sim.clock.now() >= start + mr.at * d_seconds:
                    sim.assign(project, iid, [marge], by=dev)
                    assigned[iid] = sim.clock.now()
            if len(assigned) == len(iids) and all(_let_go(sim, project, iid, marge) for iid in iids):
                break
            time.sleep(0.2)
    return assigned


def _let_go(sim: Simulator, project: Project, iid: int, marge: User) -> bool:
    mr = sim.merge_request(project, iid)
    return mr.state == "merged" or marge.id not in mr.assignee_ids
