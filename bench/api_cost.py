"""GitLab API requests per merged MR, against the GitLab simulator, as a function of CI duration.

One MR at a time: a developer comments `/merge-assist merge`, its pipeline runs for N simulated
minutes, the bot merges it. Every API request the simulator served with the bot's token between
the comment and the merge (plus a short settle for trailing calls such as the "merged" comment)
is counted and listed by method and path template. Git requests and the driver's own actions are
not counted.

Time: the simulator runs on a real-time clock scaled by --scale (default 60: one real second is one
simulated minute). The bot's own real-time timers are scaled by the same factor so that, in
simulated time, they run at their production defaults: the safety-net re-check of waiting lanes
(MERGE_ASSIST_RECHECK_SECONDS, 300 s, doubling while a lane stays quiet) and, in embedded mode,
the age limits of the adapter's cached reads (protected branches 900 s, project settings 3600 s,
MR reads 900 s; webhooks drop MR reads sooner). The repo-config re-read (900 s, bot.config) is not
scaled; a push of `.merge-assist.yml` to the default branch drops it. Without that, a 30-minute
pipeline would take 30 real seconds and the bot's timers would see none of the time a real
pipeline takes.

    python bench/api_cost.py                       # embedded mode (SQLite + in-process queue)
    python bench/api_cost.py --mode production     # merge-assist serve + worker, PostgreSQL + Redis
    python bench/api_cost.py --durations 10 --scale 120

Figures: cold (first MR in a fresh process, caches empty) vs warm (next MR, same project), then
warm figures for each pipeline duration, and the same with the re-check timer off (webhooks only);
then a merge train (a second project, merge commits, `.merge-assist.yml` with `merge: {mode: train}`):
its first MR (cold for that project) and the next one (warm).
Targets (issue 10), warm: serial at most 6 requests per merged MR, flat in pipeline duration; train
at most 10. marge-bot 1.4.0 makes about 17 + one pipeline poll per 10 s of CI (about 77 at 10 minutes).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gitlab_sim import PipelinePlan, SimClock, Simulator, WebhookSettings  # noqa: E402
from gitlab_sim.network import free_port  # noqa: E402
from gitlab_sim.waiting import wait_for  # noqa: E402
from gitlab_sim.sample import Team, make_team  # noqa: E402
from gitlab_sim.state import DEVELOPER, Project, RequestRecord, User  # noqa: E402

TARGET = 6  # serial mode, warm
TRAIN_TARGET = 10
TRAIN_CONFIG = "merge:\n  mode: train\n"
MARGE_BASE = 17  # marge-bot 1.4.0: fixed requests per merged MR (bench/marge_compat.py measures 19 with a rebase)
MARGE_POLL_SECONDS = 10  # marge-bot polls the pipeline every 10 s while CI runs
WEBHOOK_SECRET = "bench-webhook-secret"
DEFAULT_RECHECK = 300.0  # MERGE_ASSIST_RECHECK_SECONDS default
DEFAULT_LEASE = 60.0
SETTLE_SECONDS = 1.0  # real seconds to keep counting after the merge (trailing comment, emoji)


def marge_estimate(pipeline_minutes: float) -> int:
    return MARGE_BASE + int(pipeline_minutes * 60 / MARGE_POLL_SECONDS)


# -- request log -----------------------------------------------------------------------------

_ID = re.compile(r"^\d+$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_NAMED = {"branches": ":branch", "files": ":file_path", "protected_branches": ":name"}


def template(record: RequestRecord) -> str:
    """`PUT /projects/:id/merge_requests/:iid/merge`-style names; ids, iids and SHAs abstracted."""
    parts = record.path.removeprefix("/api/v4").split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        previous = parts[index - 1] if index else ""
        if _ID.match(part):
            out.append({"projects": ":id", "merge_requests": ":iid", "notes": ":note_id", "all": ":user_id",
                        "pipelines": ":pipeline_id", "users": ":user_id"}.get(previous, ":n"))
        elif _SHA.match(part):
            out.append(":sha")
        elif previous in _NAMED and part:
            out.append(_NAMED[previous])
        else:
            out.append(part)
    return f"{record.method} {'/'.join(out)}"


def bot_api_requests(sim: Simulator, bot_user: User) -> list[RequestRecord]:
    return [r for r in sim.request_log("api") if r.user_id == bot_user.id]


# -- the bot, in either mode -----------------------------------------------------------------

@dataclass
class RunningBot:
    url: str
    stop: Callable[[], None]
    describe: str


def scale_embedded_timers(scale: float) -> None:
    """Scale the bot's real-time cache constants (this process only; read when objects are built)."""
    from merge_assist.adapters import gitlab as gitlab_adapter

    gitlab_adapter.PROTECTED_CACHE_SECONDS = 900.0 / scale
    gitlab_adapter.PROJECT_CACHE_SECONDS = 3600.0 / scale
    gitlab_adapter.MERGE_REQUEST_CACHE_SECONDS = 900.0 / scale


def start_embedded(world: Team, workdir: Path, recheck: float, lease: float) -> RunningBot:
    from merge_assist.bot.embedded import BackgroundServer
    from merge_assist.bot.runtime import Runtime
    from merge_assist.bot.settings import Secret, Settings

    settings = Settings(database_url=f"sqlite:///{workdir / 'bot.db'}", gitlab_url=world.sim.url,
                        gitlab_token=Secret(world.bot.token), webhook_secret=Secret(WEBHOOK_SECRET),
                        recheck_seconds=recheck, lease_seconds=lease, git_cache_dir=workdir / "git")
    runtime = Runtime.build(settings, run_workers=True)
    server = BackgroundServer(runtime).start()

    def stop() -> None:
        server.stop()
        runtime.stop()

    return RunningBot(server.url, stop, "embedded: SQLite + in-process queue, workers inside serve")


def start_production(world: Team, workdir: Path, recheck: float, lease: float, database_url: str,
                     redis_url: str) -> RunningBot:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGE_ASSIST_")}
    env.update({
        "MERGE_ASSIST_DATABASE_URL": database_url, "MERGE_ASSIST_REDIS_URL": redis_url,
        "MERGE_ASSIST_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}", "MERGE_ASSIST_GITLAB_URL": world.sim.url,
        "MERGE_ASSIST_GITLAB_TOKEN": world.bot.token, "MERGE_ASSIST_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MERGE_ASSIST_RECHECK_SECONDS": str(recheck), "MERGE_ASSIST_LEASE_SECONDS": str(lease),
        "MERGE_ASSIST_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO),
        "MERGE_ASSIST_GIT_CACHE_DIR": str(workdir / "git"), "MERGE_ASSIST_JWT_SECRET": uuid.uuid4().hex * 2,
    })
    command = [sys.executable, "-m", "merge_assist.bot.cli"]
    migrated = subprocess.run([*command, "migrate"], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=120)
    if migrated.returncode != 0:
        raise RuntimeError(f"merge-assist migrate failed: {migrated.stderr.strip()[-500:]}")
    port = free_port()
    processes = []
    for name, args in (("serve", ["serve", "--port", str(port)]), ("worker", ["worker"])):
        log = open(workdir / f"{name}.log", "wb")
        processes.append(subprocess.Popen([*command, *args], cwd=workdir, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        import httpx

        try:
            return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop() -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    try:
        wait_for(ready, 30, message="merge-assist serve /readyz")
    except TimeoutError:
        stop()
        raise
    return RunningBot(url, stop, "production: merge-assist serve + merge-assist worker, PostgreSQL + Redis "
                                 "(adapter cache TTLs not scaled in subprocesses)")


# -- one merged MR ---------------------------------------------------------------------------

@dataclass
class Measurement:
    label: str
    minutes: float
    requests: list[RequestRecord] = field(default_factory=list)
    real_seconds: float = 0.0
    started_at: float = 0.0  # the simulator's clock when the command was posted
    started_wall: float = 0.0
    scale: float = 1.0
    hooks: list[tuple[float, str]] = field(default_factory=list)  # (wall time, description)

    @property
    def total(self) -> int:
        return len(self.requests)

    def breakdown(self) -> collections.Counter[str]:
        return collections.Counter(template(r) for r in self.requests)


class Bench:
    def __init__(self, world: Team, scale: float, timeout: float) -> None:
        self.world = world
        self.scale = scale
        self.timeout = timeout
        self.count = 0

    def merge_one(self, label: str, minutes: float, project: Project | None = None) -> Measurement:
        sim, world = self.world.sim, self.world
        project = project or world.project
        default_branch = project.default_branch
        # Pipelines on the default branch (after each merge) are kept short so that one MR's
        # measurement does not see the previous merge's pipeline end.
        sim.set_pipeline_plan(lambda request: PipelinePlan(
            "pass", duration=5.0 if request.ref == default_branch else minutes * 60))
        wait_for(lambda: not any(p.status in ("created", "pending", "running")
                                 for p in (*sim.pipelines(world.project), *sim.pipelines(project))),
                 self.timeout + minutes * 60 / self.scale, message="earlier pipelines to finish")
        self.count += 1
        branch = f"feature-{self.count}"
        # The MR and its first pipeline are the developer's doing: let that pipeline finish
        # before counting, as if the command came later.
        mr = sim.create_merge_request(project, branch, author=world.dev, files={f"{branch}.txt": "x\n"})
        iid = mr.iid
        sim.wait_for_deliveries(10)
        time.sleep(0.3)  # let the bot handle the MR/pipeline webhooks (nothing to do: nothing queued)
        sim.reset_request_log()
        started = time.monotonic()
        started_at, started_wall = sim.clock.now(), time.time()
        sim.post_note(project, iid, world.dev, "/merge-assist merge")
        wait_for(lambda: sim.merge_request(project, iid).state == "merged",
                 self.timeout + minutes * 60 / self.scale, message=f"!{iid} to merge")
        real = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        sim.wait_for_deliveries(10)
        time.sleep(0.3)
        deliveries = {d.id: d for d in sim.deliveries()}
        hooks = [(a.timestamp - a.duration, hook_description(deliveries[a.delivery_id], a.status, a.response_body))
                 for a in sim.delivery_log() if a.timestamp >= started_wall]
        return Measurement(label, minutes, bot_api_requests(sim, world.bot), real, started_at, started_wall,
                           self.scale, hooks)


def hook_description(delivery: Any, status: int | None, answer: str) -> str:
    attributes = delivery.payload.get("object_attributes") or {}
    detail = attributes.get("status") or attributes.get("action") or delivery.payload.get("build_status") or ""
    name = delivery.payload.get("build_name") or ""
    outcome = re.search(r'"status":\s*"(\w+)"', answer or "")
    return (f"{status}  webhook {delivery.header_event} {name} {detail}".rstrip()
            + (f" -> {outcome.group(1)}" if outcome else ""))


# -- output ------------------------------------------------------------------------------------

def verdict(total: float, target: int = TARGET) -> str:
    return f"target <= {target}: " + ("meets target" if total <= target else "MISSES target")


def print_breakdown(measurement: Measurement, timeline: bool = False) -> None:
    for name, count in sorted(measurement.breakdown().items(), key=lambda item: (-item[1], item[0])):
        print(f"    {count:3d}  {name}")
    if timeline:
        print("    timeline (simulated seconds after the command; webhooks the bot received interleaved):")
        rows = [(r.timestamp - measurement.started_at, f"{r.status}  {template(r)}") for r in measurement.requests]
        rows += [((wall - measurement.started_wall) * measurement.scale, f"{text}")
                 for wall, text in measurement.hooks]
        for offset, text in sorted(rows):
            print(f"      t={offset:7.1f}s  {text}")


def make_train_project(world: Team) -> Project:
    """A merge-commit project whose `.merge-assist.yml` turns on merge trains (as bench/trains.py)."""
    sim = world.sim
    project = sim.create_project(f"{world.project.namespace_path}/train", merge_method="merge",
                                 files={"README.md": "train\n", ".merge-assist.yml": TRAIN_CONFIG})
    sim.add_member(project, world.dev, DEVELOPER)
    sim.protect_branch(project, project.default_branch, merge_access_level=DEVELOPER)
    return project


def run_mode(args: argparse.Namespace, workdir: Path) -> list[Measurement]:
    scale = args.scale
    recheck_scaled = DEFAULT_RECHECK / scale
    if args.mode == "embedded":
        scale_embedded_timers(scale)
    sim = Simulator(workdir / "sim", SimClock.real_time(scale=scale), rebase_delay=0.05,
                    webhook_settings=WebhookSettings(backoff=0.05, timeout=5.0))
    sim.start()
    results: list[Measurement] = []
    bots: list[RunningBot] = []
    try:
        world = make_team(sim, merge_method=args.merge_method)
        train_project = make_train_project(world) if args.train else None
        bench = Bench(world, scale, args.timeout)

        def start(recheck: float, name: str) -> RunningBot:
            path = workdir / name
            path.mkdir()
            if args.mode == "embedded":
                running = start_embedded(world, path, recheck, DEFAULT_LEASE / scale)
            else:
                running = start_production(world, path, recheck, DEFAULT_LEASE / scale, args.database_url,
                                           args.redis_url)
            bots.append(running)
            with sim.state.lock:
                sim.state.hooks.clear()
            for project in (world.project, train_project):
                if project is not None:
                    sim.add_hook(project, f"{running.url}/webhooks/gitlab", WEBHOOK_SECRET)
            return running

        running = start(recheck_scaled, "bot")
        print(f"mode: {running.describe}")
        print(f"clock: simulator real time x{scale:g}; bot re-check every {DEFAULT_RECHECK:g} simulated s "
              f"({recheck_scaled:.2f} real s); merge method {args.merge_method}")
        print()
        durations = args.durations
        first = 10.0 if 10.0 in durations else durations[0]
        results.append(bench.merge_one("cold", first))
        results.append(bench.merge_one("warm", first))
        for minutes in durations:
            if minutes != first:
                results.append(bench.merge_one("warm", minutes))
        if train_project is not None:
            results.append(bench.merge_one("train cold", first, train_project))
            results.append(bench.merge_one("train warm", first, train_project))
        if args.webhooks_only:
            running.stop()
            bots.remove(running)
            # Re-check timer effectively off: only webhooks drive the lane.
            start(10_000.0, "bot-webhooks-only")
            bench.merge_one("warm-up", first)
            for minutes in durations:
                results.append(bench.merge_one("webhooks only", minutes))
    finally:
        for running in bots:
            running.stop()
        sim.stop()
    return results


def report(args: argparse.Namespace, results: list[Measurement]) -> None:
    by_label = {(m.label, m.minutes): m for m in results}
    cold = next(m for m in results if m.label == "cold")
    warm = next(m for m in results if m.label == "warm" and m.minutes == cold.minutes)
    print(f"cold: first MR in a fresh process, {cold.minutes:g}-minute pipeline: "
          f"{cold.total} API requests per merged MR (the target is for warm)")
    print_breakdown(cold, args.timeline)
    print(f"warm: next MR in the same project, {warm.minutes:g}-minute pipeline: "
          f"{warm.total} API requests per merged MR ({verdict(warm.total)})")
    print_breakdown(warm, args.timeline)
    trains = [m for m in results if m.label.startswith("train")]
    for measurement in trains:
        what = "first MR in the train project" if measurement.label == "train cold" else "next MR in the train project"
        aim = verdict(measurement.total, TRAIN_TARGET) if measurement.label == "train warm" else "the target is for warm"
        print(f"{measurement.label}: {what}, {measurement.minutes:g}-minute pipeline: "
              f"{measurement.total} API requests per merged MR ({aim})")
        print_breakdown(measurement, args.timeline)
    print()
    print("API requests per merged MR by pipeline duration (warm):")
    print(f"  {'pipeline':>10}  {'merge-assist':>12}  {'webhooks only':>13}  {'marge-bot 1.4.0 (est.)':>22}  target")
    for minutes in args.durations:
        with_timer = by_label.get(("warm", minutes))
        only = by_label.get(("webhooks only", minutes))
        print(f"  {minutes:>7g} min  {with_timer.total if with_timer else '-':>12}  "
              f"{only.total if only else '-':>13}  {marge_estimate(minutes):>22}  <= {TARGET}")
    print()
    headline = warm.total
    print(f"figure: {headline} API requests per merged MR at a {warm.minutes:g}-minute pipeline "
          f"({verdict(headline)}; marge-bot 1.4.0: ~{marge_estimate(warm.minutes)}, "
          f"{marge_estimate(warm.minutes) / max(headline, 1):.1f}x more)")
    train_warm = next((m for m in trains if m.label == "train warm"), None)
    if train_warm is not None:
        print(f"figure: train mode: {train_warm.total} API requests per merged MR at a {train_warm.minutes:g}-minute "
              f"pipeline, warm ({verdict(train_warm.total, TRAIN_TARGET)})")
    totals = [by_label[("warm", m)].total for m in args.durations if ("warm", m) in by_label]
    if len(totals) > 1:
        flat = max(totals) - min(totals)
        print(f"figure: spread across {', '.join(f'{m:g}' for m in args.durations)}-minute pipelines: "
              f"{min(totals)}..{max(totals)} ({'flat' if flat <= 1 else 'NOT flat: grows with pipeline duration'})")
    extra = [m for m in results if m.label == "webhooks only"]
    if extra and args.timeline:
        for measurement in extra:
            print(f"webhooks only, {measurement.minutes:g}-minute pipeline: {measurement.total}")
            print_breakdown(measurement, True)
    if extra:
        print("figure: webhooks only (re-check timer off): "
              + ", ".join(f"{m.total} at {m.minutes:g} min" for m in extra))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--durations", type=float, nargs="+", default=[1.0, 10.0, 30.0],
                        help="pipeline durations in simulated minutes (default 1 10 30)")
    parser.add_argument("--scale", type=float, default=60.0,
                        help="simulated seconds per real second (default 60)")
    parser.add_argument("--merge-method", choices=("merge", "ff", "rebase_merge"), default="merge")
    parser.add_argument("--no-webhooks-only", dest="webhooks_only", action="store_false",
                        help="skip the run with the re-check timer off")
    parser.add_argument("--timeout", type=float, default=60.0, help="real seconds per MR beyond its pipeline")
    parser.add_argument("--database-url", default=os.environ.get("MERGE_ASSIST_BENCH_PG"),
                        help="production mode: a PostgreSQL database the bench may migrate "
                             "(default: a fresh database on 127.0.0.1)")
    parser.add_argument("--redis-url", default=os.environ.get("MERGE_ASSIST_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="skip the merge-train project (it needs git)")
    parser.add_argument("--timeline", action="store_true", help="list every counted request with its time")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="merge-assist-api-cost-"))
    dropper: Callable[[], None] | None = None
    try:
        if args.mode == "production" and not args.database_url:
            args.database_url, dropper = create_pg_database()
        results = run_mode(args, workdir)
        report(args, results)
    finally:
        if dropper is not None:
            dropper()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def create_pg_database() -> tuple[str, Callable[[], None]]:
    """A throw-away database on the local PostgreSQL (same defaults as the test suite)."""
    import sqlalchemy

    admin_url = os.environ.get("MERGE_ASSIST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    driver_url = admin_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    engine = sqlalchemy.create_engine(driver_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return url, drop


if __name__ == "__main__":
    sys.exit(main())
