"""Chaos in production mode (private PostgreSQL + Redis, several worker processes): 100 MRs over
four lanes while Redis is stopped for 20 s, PostgreSQL restarts, GitLab answers 5xx and 429 for
a minute and a worker is SIGKILLed every few seconds. Every MR must end merged or failed with a
reason, none merged twice, none lost, each with its audit trail; every webhook is answered 2xx in
the end (a 503 only while Redis is down), and the event queue drains with nothing dead-lettered.
The figures are printed."""

from __future__ import annotations

import random
import re
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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

MR_COUNT = 100
LANES = ("main", "release-1", "release-2", "release-3")
FAILING_EVERY = 10  # every tenth MR's pipeline fails: those must end failed, with the reason
PREFIX = "chaos"
COMMENT_EVERY = 1.0  # seconds: the comments arrive across the whole fault timeline (0-100 s)
DEADLINE_SECONDS = 300  # from the first MR until all are final and the queue drained (~110 s unloaded)


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
        self.redis_down = (0.0, 0.0)  # when it stopped and when it answered again
        self.events: list[str] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self.completed = False  # every step of the timeline ran
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

    def _stop_redis(self) -> None:
        self.store.stop()
        self.redis_down = (time.monotonic(), 0.0)

    def _start_redis(self) -> None:
        self.store.start()
        self.redis_down = (self.redis_down[0], time.monotonic())

    @property
    def redis_downtime(self) -> float:
        return self.redis_down[1] - self.redis_down[0]

    def _run(self) -> None:
        steps: list[tuple[float, str, Callable[[], None]]] = [
            (4, "Redis stopped", self._stop_redis),
            (24, "Redis started", self._start_redis),
            (30, "PostgreSQL restarting", self.postgres.restart),
            (40, "GitLab answers 503 to every third request for 30 s",
             lambda: self.sim.faults.server_errors(503, every=3, seconds=30)),
            (70, "GitLab answers 429 Retry-After: 1 to every fourth request for 30 s",
             lambda: self.sim.faults.rate_limit(1, every=4, seconds=30)),
        ]
        steps += [(second, "SIGKILL a worker", self._kill_a_worker) for second in range(6, 100, 7)]
        for second, what, action in sorted(steps, key=lambda step: step[0]):
            if not self._at(second):
                return
            self._log(what)
            action()
        self.completed = True

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


def drained(client: redis.Redis) -> bool:
    """Every event in the stream was handed to a worker and acknowledged."""
    try:
        [group] = client.xinfo_groups(f"{PREFIX}:events")
        last = client.xinfo_stream(f"{PREFIX}:events")["last-generated-id"]
    except redis.RedisError:
        return False
    return int(group["pending"]) == 0 and group["last-delivered-id"] == last


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


def figures(chaos: Chaos, sim: Simulator, states: Counter[str], failed: Counter[str], dead: int,
            seconds: float, finished: bool) -> str:
    gitlab_faults = Counter(r.status for r in sim.request_log("api") if r.status in (429, 500, 502, 503))
    webhook_answers = Counter(a.status for a in sim.delivery_log())
    return (f"chaos: {MR_COUNT} MRs over {len(LANES)} lanes, {'all final, queue drained' if finished else 'NOT done'} "
            f"after {seconds:.0f} s; merged {states['merged']}, failed {states['failed']} "
            f"(reasons: {dict(failed)}), other {sum(states.values()) - states['merged'] - states['failed']}; "
            f"worker SIGKILLs {chaos.kills}; Redis down {chaos.redis_downtime:.1f} s; "
            f"GitLab faults served {dict(gitlab_faults)}; webhook answers {dict(webhook_answers)}; "
            f"dead letters {dead}")


def error_lines(bot: Bot) -> str:
    """Each distinct ERROR line and exception of the bot's logs, with how often it came."""
    assert bot.workdir is not None
    lines: Counter[str] = Counter()
    for path in bot.workdir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or line.startswith(("Traceback", "sqlalchemy.exc", "redis.exc")):
                lines[line[24:200]] += 1
    return "\n".join(f"{count:5d} {line}" for line, count in lines.most_common(30))


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
    client = redis.Redis.from_url(store.url, socket_timeout=5)
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
                time.sleep(max(0.0, started + number * COMMENT_EVERY - time.monotonic()))

            def all_final() -> bool:
                by_mr = final_entries(bot, world.project.id)
                return by_mr is not None and all(
                    iid in by_mr and all(e.state.is_final for e in by_mr[iid]) for iid in iids)

            deadline = started + DEADLINE_SECONDS
            finished = until(all_final, deadline)
        # GitLab has delivered every event (retrying what was refused) and the workers handled them all.
        finished = finished and until(lambda: sim.wait_for_deliveries(1.0) and drained(client), deadline)
        elapsed = time.monotonic() - started
    finally:
        ticking.set()
        bot.stop()

    by_mr = final_entries(bot, world.project.id)
    assert by_mr is not None
    entries = [e for iid in iids for e in by_mr.get(iid, [])]
    states = Counter(e.state.value for e in entries)
    failed = Counter(re.sub(r"\d+", "N", e.reason[:80]) for e in entries if e.state is EntryState.FAILED)
    merges = Counter(int(r.path.rsplit("/", 2)[-2]) for r in sim.request_log("api")
                     if r.method == "PUT" and r.path.endswith("/merge") and r.status == 200)
    dead = client.xlen(f"{PREFIX}:events:dead")
    print("\n" + "\n".join(chaos.events))
    print(figures(chaos, sim, states, failed, dead, elapsed, finished))
    print(unfinished(bot, world, iids))
    print(error_lines(bot))

    assert chaos.completed, "the fault timeline did not run to its end"
    assert finished, "not every MR ended merged or failed, or the queue did not drain, in time"
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
    assert dead == 0, "events were dead-lettered instead of handled"
    answers = sim.delivery_log()
    assert {a.status for a in answers} <= {200, 503}, Counter(a.status for a in answers)
    last_answer = {a.delivery_id: a.status for a in answers}  # attempts are logged in order
    assert set(last_answer.values()) == {200}, "GitLab gave up on a webhook delivery"
