"""Merge trains against the GitLab simulator on a virtual clock: time to merge, pipelines, API cost.

The real bot (embedded: SQLite, in-process queue, real git for the cars) runs against the
simulator; the simulator's clock only moves when this driver advances it, from one pipeline event
or arrival to the next, and after each step the driver waits until the bot has handled everything
(webhooks delivered, its queue idle), so the bot acts at the simulated moment things happen. CI is the simulator's tree CI (gitlab_sim.TreeCI): a tree holding a bad MR fails, at a
uniform 0.2-1.0 D; flaky pipelines fail at random; the simulator runs at most N pipelines at once.

Workload (issue 10): MRs arriving one every 0.25 D, each bad with probability p. Figures per mode:
mean and p90 time from the command to the merge in pipeline durations D, pipelines the queue
waited for per merged MR (train: its cars; serial: the MRs' own pipelines), GitLab API requests
per merged MR (every request with the bot's token), good MRs merged and bad MRs kept out.

    python bench/trains.py                 # the issue's rows (a few minutes)
    python bench/trains.py --quick         # fewer MRs, the base row only
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gitlab_sim import PipelineRequest, SimClock, Simulator, TreeCI, WebhookSettings  # noqa: E402
from gitlab_sim.sample import Team, make_team  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import train_model  # noqa: E402
from train_rows import Result, Workload, merge_results  # noqa: E402

D = 600.0  # one pipeline, in simulated seconds
STEP = D / 20
WEBHOOK_SECRET = "bench-trains-secret"


def model_row(workload: Workload, seeds: range) -> str:
    settings = replace(train_model.TRAIN, pipeline_limit=workload.runners, flaky_retries=workload.flaky_retries)
    figures = train_model.summarize(model_workload(workload), settings, seeds)
    return f"{figures['mean']:.2f} | {figures['p90']:.2f} | {figures['pipes']:.2f}"


def marge_row(mrs: int, d_seconds: float, venv_dir: Path | None) -> str:
    """The real marge-bot on the first MRs of the base workload's seed 0, in real time."""
    from marge_anchor import run_anchor
    from marge_compat import install_marge

    workload = Workload(f"base workload's first {mrs} MRs (D = {d_seconds:.0f} s real)", mrs=mrs, seed=0)
    arrivals = train_model.draw_arrivals(model_workload(workload), random.Random(workload.seed))
    with tempfile.TemporaryDirectory(prefix="bench-marge-") as tmp:
        marge_app = install_marge(venv_dir or Path(tmp) / "venv")
        result = run_anchor(marge_app, Path(tmp), workload, arrivals, d_seconds)
    return result.row()


def config(mode: str, workload: Workload) -> str:
    # The landed commit is a tested car: no second pipeline for the target on the same runners.
    return (f"merge:\n  mode: {mode}\n  pipeline_limit: {workload.runners}\n  flaky_retries: {workload.flaky_retries}\n"
            f"  target_pipeline: false\nrules:\n  approvals: false\n")


def start_bot(team: Team, workdir: Path) -> tuple[object, object]:
    from merge_assist.bot.embedded import BackgroundServer
    from merge_assist.bot.runtime import Runtime
    from merge_assist.bot.settings import Secret, Settings

    settings = Settings(database_url=f"sqlite:///{workdir / 'bot.db'}", gitlab_url=team.sim.url,
                        gitlab_token=Secret(team.bot.token), webhook_secret=Secret(WEBHOOK_SECRET),
                        recheck_seconds=3600.0, lease_seconds=60.0, git_cache_dir=workdir / "git", workers=2)
    runtime = Runtime.build(settings, run_workers=True)
    server = BackgroundServer(runtime).start()
    team.sim.add_hook(team.project, f"{server.url}/webhooks/gitlab", WEBHOOK_SECRET)
    return runtime, server


def settle(sim: Simulator, runtime: object, timeout: float = 60.0) -> None:
    """Until every webhook is delivered and the bot's queue has been idle for a moment."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        sim.wait_for_deliveries(timeout=2.0)
        quiet = quiet + 1 if runtime.queue.idle() else 0  # type: ignore[attr-defined]
        time.sleep(0.01)


def model_workload(workload: Workload) -> train_model.Workload:
    return train_model.Workload(mrs=workload.mrs, gap=workload.gap, p_bad=workload.p_bad, flaky=workload.flaky,
                                runners=workload.runners)


def tree_ci(sim: Simulator, workload: Workload, mrs: list[train_model.Arrival]) -> TreeCI:
    """The simulator's CI judging trees, with each bad MR failing at its own offset, as in the model."""
    def fail_offset(request: PipelineRequest) -> float:
        causes = ci.verdict(request.project_path, request.sha).all_causes
        offsets = [mrs[int(match.group(1))].fail_after for match in map(BAD_FILE.match, causes) if match]
        return min(offsets) if offsets else random.Random(f"{request.sha}:{request.attempt}").uniform(0.2, 1.0)

    ci = TreeCI(sim, duration=D, fail_at=fail_offset, flaky_rate=workload.flaky, seed=workload.seed)
    return ci


BAD_FILE = re.compile(r"src/change(\d+)\.txt is marked BROKEN")


def run(workload: Workload, mode: str) -> Result:
    started = time.monotonic()
    mrs = train_model.draw_arrivals(model_workload(workload), random.Random(workload.seed))
    with tempfile.TemporaryDirectory(prefix="bench-trains-") as tmp:
        root = Path(tmp)
        sim = Simulator(root / "sim", SimClock.virtual_clock(), rebase_delay=0.0,
                        webhook_settings=WebhookSettings(backoff=0.02, timeout=5.0)).start()
        try:
            # Serial mode tests each MR on top of the target only when it rebases (ff); in a merge-commit
            # project it would land untested combinations, which is what trains are for.
            team = make_team(sim, merge_method="ff" if mode == "serial" else "merge",
                             files={"README.md": "bench\n", ".merge-assist.yml": config(mode, workload)})
            sim.set_pipeline_plan(tree_ci(sim, workload, mrs))
            sim.set_runner_capacity(workload.runners)
            runtime, server = start_bot(team, root)
            try:
                return drive(workload, mode, team, runtime, mrs, started)
            finally:
                server.stop()  # type: ignore[attr-defined]
                runtime.stop()  # type: ignore[attr-defined]
        finally:
            sim.stop()


def drive(workload: Workload, mode: str, team: Team, runtime: object, mrs: list[train_model.Arrival],
          started: float) -> Result:
    sim, project = team.sim, team.project
    start = sim.clock.now()
    arrivals = [start + mr.at * D for mr in mrs]
    bad: set[int] = set()
    commanded: dict[int, float] = {}
    skip = " [skip ci]" if mode == "train" else ""  # in a train the cars test; the MR's own CI ran earlier
    requests_before = len([r for r in sim.request_log("api") if r.user_id == team.bot.id])
    pipelines_before = {p.id for p in sim.pipelines(project)}
    deadline = start + (workload.mrs * workload.gap + 40 * workload.mrs * (1 if mode == "serial" else 0.1) + 20) * D
    while sim.clock.now() < deadline:
        while arrivals and arrivals[0] <= sim.clock.now():
            arrivals.pop(0)
            index = len(commanded)
            is_bad = mrs[index].bad
            content = "BROKEN\n" if is_bad else f"change {index}\n"
            sim.commit(project, f"mr-{index}", {f"src/change{index}.txt": content}, f"Change {index}{skip}", team.dev)
            mr = sim.create_merge_request(project, f"mr-{index}", author=team.dev, title=f"Change {index}")
            if is_bad:
                bad.add(mr.iid)
            sim.post_note(project, mr.iid, team.dev, "/merge-assist merge")
            commanded[mr.iid] = sim.clock.now()
            settle(sim, runtime)
        settle(sim, runtime)
        if not arrivals and all(_done(sim, project, iid, runtime) for iid in commanded):
            break
        sim.clock.advance(next_step(sim, arrivals))
    merged = {iid: sim.merge_request(project, iid) for iid in commanded}
    ttm = [((mr.merged_at or 0.0) - commanded[iid]) / D for iid, mr in merged.items()
           if mr.state == "merged" and iid not in bad]
    if mode == "train":
        waited = [p for p in sim.pipelines(project) if p.id not in pipelines_before and p.ref.startswith("merge-assist/")]
    else:
        waited = [p for p in sim.pipelines(project) if p.id not in pipelines_before and p.ref.startswith("mr-")]
    requests = len([r for r in sim.request_log("api") if r.user_id == team.bot.id]) - requests_before
    landed = [iid for iid, mr in merged.items() if mr.state == "merged"]
    if TRACE and mode == "train":
        trace(sim, project, runtime, start, commanded, merged, bad)
    return Result(workload, mode, ttm, len([p for p in waited if p.status != "skipped"]), requests, len(landed),
                  len([iid for iid in landed if iid in bad]),
                  len([iid for iid in commanded if iid not in bad and iid not in landed]), time.monotonic() - started)


def trace(sim: Simulator, project: object, runtime: object, start: float, commanded: dict[int, float],
          merged: dict[int, object], bad: set[int]) -> None:
    """Every car's pipeline on the virtual clock (in D), for finding where time goes."""
    from sqlalchemy import select

    from merge_assist.storage.models import QueueEntryRow, TrainCarRow

    def at(value: float | None) -> str:
        return f"{(value - start) / D:6.2f}" if value is not None else "     -"

    with runtime.store.db.session() as session:  # type: ignore[attr-defined]
        iids = {row.id: row.mr_iid for row in session.scalars(select(QueueEntryRow))}
        cars = {row.pipeline_id: row for row in session.scalars(select(TrainCarRow)) if row.pipeline_id}
    out = sys.stderr
    for pipeline in sim.pipelines(project):  # type: ignore[arg-type]
        car = cars.get(pipeline.id)
        if car is None:
            continue
        riders = ",".join(f"{iids.get(e, e)}{'*' if iids.get(e) in bad else ''}" for e, _ in car.riders)
        held = ",".join(str(iids.get(e, e)) for e, _ in car.held)
        print(f"pipeline {pipeline.id:4} car {car.car_id:3}{' side' if car.side else '     '} "
              f"created {at(pipeline.created_at)} started {at(pipeline.started_at)} "
              f"finished {at(pipeline.finished_at)} {pipeline.status:9} riders [{riders}] held [{held}] "
              f"{car.status}: {car.reason[:70]}", file=out)
    for iid, when in commanded.items():
        mr = merged[iid]
        print(f"!{iid}{'*' if iid in bad else ' '} commanded {at(when)} merged {at(getattr(mr, 'merged_at', None))}",
              file=out)


TRACE = False


def next_step(sim: Simulator, arrivals: list[float]) -> float:
    """To the next pipeline event or arrival, so that the bot acts at the moment things happen."""
    now = sim.clock.now()
    due = [when for when in (sim.clock.next_due(), arrivals[0] if arrivals else None) if when is not None]
    return max(min(due) - now, 0.0) if due else STEP


def _done(sim: Simulator, project: object, iid: int, runtime: object) -> bool:
    entry = runtime.store.queue.latest_entry_for(project.id, iid)  # type: ignore[attr-defined]
    return entry is not None and entry.state.is_final


WORKLOADS = [
    Workload("base: p(bad) 0.1, 4 runners"),
    Workload("5 % flaky, 1 re-test", flaky=0.05, flaky_retries=1),
    Workload("p(bad) 0.02", p_bad=0.02),
    Workload("p(bad) 0.3", p_bad=0.3),
    Workload("2 runners", runners=2),
    Workload("8 runners", runners=8),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 MRs, base workload only")
    parser.add_argument("--mrs", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=20,
                        help="runs of the base and flaky rows (figures are means over seeds)")
    parser.add_argument("--other-seeds", type=int, default=3, help="runs of each other row")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, ... (the model uses 0..19)")
    parser.add_argument("--rows", default="", help="only these rows, by number from 0 (e.g. 0,1); the serial row "
                                                   "goes with row 0")
    parser.add_argument("--serial-mrs", type=int, default=20,
                        help="serial mode lands one MR per D: a smaller workload keeps it to minutes")
    parser.add_argument("--trace", action="store_true", help="print every car's pipeline timeline to stderr")
    parser.add_argument("--marge-mrs", type=int, default=6, help="MRs of the marge-bot anchor row")
    parser.add_argument("--marge-d", type=float, default=90.0, help="D in real seconds for the marge-bot anchor row")
    parser.add_argument("--marge-venv", type=Path, default=None, help="venv with marge-bot (made if missing)")
    args = parser.parse_args(argv)
    global TRACE
    TRACE = args.trace
    workloads = WORKLOADS[:1] if args.quick else WORKLOADS
    size = args.mrs or (20 if args.quick else 80)
    print("D = one pipeline; MRs every 0.25 D; virtual clock moved from event to event; "
          "train: merge-commit project; serial: fast-forward project (rebase, test, merge one at a time)")
    print("model = bench/train_model.py (the same planner, no GitLab) on the same MRs (same bad MRs, same "
          "failure offsets), for how much the real executor, git and webhooks add")
    print("| workload | mode | seeds | mean D | p90 D | pipelines/merged MR | API requests/merged MR | merged |"
          " bad merged | good not merged | model mean D | model p90 D | model pipelines | real s |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    chosen_rows = {int(number) for number in args.rows.split(",") if number.strip().isdigit()} | (
        {-1} if "marge" in args.rows else set())
    for index, workload in enumerate(workloads):
        if chosen_rows and index not in chosen_rows:
            continue
        seeds = args.seeds if index < 2 else args.other_seeds  # the targets' rows get the most seeds
        sized = Workload(**{**workload.__dict__, "mrs": size})
        chosen = range(args.first_seed, args.first_seed + seeds)
        runs = [run(Workload(**{**sized.__dict__, "seed": seed}), "train") for seed in chosen]
        print(merge_results(runs).row(model_row(sized, chosen)), flush=True)
        if index == 0 and args.serial_mrs:
            serial = Workload(**{**workload.__dict__, "mrs": min(size, args.serial_mrs),
                                 "label": f"{workload.label} ({min(size, args.serial_mrs)} MRs)"})
            print(run(serial, "serial").row(), flush=True)
    if (not chosen_rows and not args.quick) or "marge" in args.rows:
        print(marge_row(args.marge_mrs, args.marge_d, args.marge_venv), flush=True)
    print("targets (train, base): mean <= 1.4 D, p90 <= 2.0 D, <= 0.9 pipelines per merged MR; "
          "5 % flaky: mean <= 1.6 D at <= 1.05 pipelines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
