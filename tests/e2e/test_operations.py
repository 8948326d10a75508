"""Operations end to end, in production mode (PostgreSQL, Redis, separate processes): every
process's metrics, JSON logs that follow each MR by event id, and workers that scale out."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitlab_sim import PipelinePlan, Simulator
from merge_assist.rules.model import EntryState
from tests.e2e.harness import Bot, World, logs, start_production, start_worker
from tests.helpers import free_port, http_ok, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
PIPELINE = 600.0
FAMILIES = (
    "merge_assist_webhook_deliveries", "merge_assist_webhook_ack_seconds", "merge_assist_lane_entries",
    "merge_assist_lane_oldest_entry_age_seconds", "merge_assist_command_to_merge_seconds",
    "merge_assist_pipeline_wait_seconds", "merge_assist_merges", "merge_assist_failures", "merge_assist_train_cars",
    "merge_assist_train_batches", "merge_assist_gitlab_requests", "merge_assist_plugin_errors",
    "merge_assist_slack_failures", "merge_assist_lease_takeovers", "merge_assist_commands",
)
Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture
def production(sim: Simulator, world: World, pg_url: str, redis_url: str, redis_prefix: str,
               tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Starts `serve` plus workers with JSON logs; yields a function taking the worker count."""
    started: list[Bot] = []

    def start(workers: int, **env: str) -> tuple[Bot, list[int]]:
        ports = [free_port() for _ in range(workers)]
        common = {"MERGE_ASSIST_LOG_FORMAT": "json", **env}
        bot = start_production(sim, world, pg_url, redis_url, redis_prefix, tmp_path,
                               worker_env={"MERGE_ASSIST_METRICS_PORT": str(ports[0])}, extra_env=common)
        started.append(bot)
        for index, port in enumerate(ports[1:], start=2):
            start_worker(bot, f"worker{index}.log", {"MERGE_ASSIST_METRICS_PORT": str(port)})
        for port in ports:
            wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=30, message=f"worker :{port}")
        return bot, ports

    yield start
    for bot in started:
        bot.stop()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(logs(bot))


def lanes(world: World, count: int) -> list[str]:
    """`main` plus `count - 1` release branches that developers may merge into."""
    branches = ["main"] + [f"release-{n}" for n in range(1, count)]
    for branch in branches[1:]:
        world.sim.commit(world.project, branch, {"VERSION": f"{branch}\n"}, f"Start {branch}", world.maintainer)
        world.sim.protect_branch(world.project, branch, merge_access_level=30)
    return branches


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]


def families(url: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(httpx.get(url, timeout=10).text)}


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for sample, found, value in samples
               if sample == name and all(found.get(k) == v for k, v in labels.items()))


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]


def run_pipelines_until(bot: Bot, world: World, wanted: dict[int, EntryState]) -> None:
    """Let simulated time pass (each lane tests one MR at a time) until every MR is in its state."""
    def done() -> bool:
        world.sim.clock.advance(PIPELINE + 60)
        return all((entry := bot.entry(iid, world.project.id)) is not None and entry.state is state
                   for iid, state in wanted.items())

    wait_for(done, timeout=90, interval=0.5, message=f"MRs to reach {wanted}")


def test_every_process_reports_its_metrics_and_the_log_follows_each_mr(production: Any, world: World) -> None:
    bot, worker_ports = production(2, MERGE_ASSIST_RECHECK_SECONDS="60")
    world.sim.set_pipeline_plan(lambda request: PipelinePlan(
        outcome="fail" if request.ref == "broken" else "pass", duration=PIPELINE))
    branches = lanes(world, 3)
    merging = [world.mr(f"change-{target}-{n}", target=target) for target in branches for n in (1, 2)]
    broken = world.mr("broken", target="main")
    for iid in merging + [broken]:
        world.comment(iid, world.dev, "/merge-assist merge")
    wait_for(lambda: all(bot.entry(iid, world.project.id) for iid in merging + [broken]), timeout=30,
             message="every MR queued")

    queue = scrape(f"{bot.url}/metrics")
    lane_of = {f"{world.project.id}:{branch}": 3 if branch == "main" else 2 for branch in branches}
    for lane, entries in lane_of.items():
        assert total(queue, "merge_assist_lane_entries", lane=lane) == entries
        assert total(queue, "merge_assist_lane_oldest_entry_age_seconds", lane=lane) >= 0

    run_pipelines_until(bot, world, {iid: EntryState.MERGED for iid in merging} | {broken: EntryState.FAILED})

    # Every event the webhooks brought has been handled: the Redis stream's backlog drains to 0.
    wait_for(lambda: total(scrape(f"{bot.url}/metrics"), "merge_assist_events_waiting") == 0, timeout=30,
             message="the events waiting to drain")
    web = scrape(f"{bot.url}/metrics")
    assert [found for name, found, _ in web if name == "merge_assist_events_waiting"] == [{}]
    workers = [sample for port in worker_ports for sample in scrape(f"http://127.0.0.1:{port}/metrics")]
    assert total(web, "merge_assist_webhook_deliveries_total", kind="Note Hook", outcome="queued") >= 7  # + bot notes
    assert total(web, "merge_assist_webhook_deliveries_total", kind="Pipeline Hook", outcome="queued") >= 7
    assert total(web, "merge_assist_webhook_ack_seconds_count") >= 14
    assert total(workers, "merge_assist_merges_total", how="queue") == 6
    assert total(workers, "merge_assist_failures_total") == 1
    assert total(workers, "merge_assist_command_to_merge_seconds_count") == 6
    assert total(workers, "merge_assist_pipeline_wait_seconds_count") == 6
    assert total(workers, "merge_assist_commands_total", command="merge", outcome="ok") == 7
    assert total(workers, "merge_assist_gitlab_requests_total", method="PUT",
                 endpoint="/projects/:project/merge_requests/:id/merge", status="200") == 6
    assert total(workers, "merge_assist_gitlab_requests_total", method="GET",
                 endpoint="/projects/:project/merge_requests/:id", status="200") >= 7
    for url in [f"{bot.url}/metrics"] + [f"http://127.0.0.1:{port}/metrics" for port in worker_ports]:
        assert set(FAMILIES) <= families(url), url

    serve_log = json_lines(bot.workdir / "serve.log")  # type: ignore[operator]
    worker_log = sorted((line for name in ("worker.log", "worker2.log") for line in json_lines(bot.workdir / name)),  # type: ignore[operator]
                        key=lambda line: line["time"])
    deliveries = {line["event_id"]: line for line in serve_log if line.get("event") == "webhook"}
    for iid in merging:
        about = [line for line in worker_log if line.get("mr") == iid and line.get("project") == world.project.id]
        command = next(line for line in about if line.get("event") == "command")
        assert deliveries[command["event_id"]]["kind"] == "Note Hook"
        assert deliveries[command["event_id"]]["mr"] == iid
        states = [line["state"] for line in about if line.get("event") == "state"]
        assert states[0] == "waiting_pipeline" and states[-2:] == ["merging", "merged"], states
        merged = next(line for line in about if line.get("event") == "merged")
        assert merged["lane"] in lane_of
        woke = merged["event_id"]
        assert woke in deliveries or woke.startswith("recheck:"), woke  # a pipeline's webhook, or the safety timer
    failed = next(line for line in worker_log if line.get("event") == "failed" and line.get("mr") == broken)
    assert failed["level"] == "WARNING" and failed["reason"]
    merges_by_webhook = [line for line in worker_log if line.get("event") == "merged" and line["event_id"] in deliveries]
    assert merges_by_webhook, "no merge could be traced to the webhook that caused it"


def test_three_workers_share_six_lanes_without_ever_driving_one_twice(production: Any, world: World) -> None:
    bot, _ports = production(3, MERGE_ASSIST_LOG_LEVEL="DEBUG", MERGE_ASSIST_LEASE_SECONDS="30")
    world.sim.set_pipeline_plan(PipelinePlan(duration=PIPELINE))
    branches = lanes(world, 6)
    mrs = [world.mr(f"scale-{target}", target=target) for target in branches]
    for iid in mrs:
        world.comment(iid, world.dev, "/merge-assist merge")
    run_pipelines_until(bot, world, {iid: EntryState.MERGED for iid in mrs})

    leases = [line for name in ("worker.log", "worker2.log", "worker3.log")
              for line in json_lines(bot.workdir / name) if line.get("event") == "lease"]  # type: ignore[operator]
    assert {line["lane"] for line in leases} == {f"{world.project.id}:{branch}" for branch in branches}
    assert len({line["holder"].split(":")[1] for line in leases}) >= 2, "only one worker process drove lanes"
    for lane in {line["lane"] for line in leases}:
        assert not overlapping_holds([line for line in leases if line["lane"] == lane]), lane


def overlapping_holds(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of holders whose logged holds of one lane overlap in time.

    A hold is logged after the lease is taken and before it is given back, so a logged hold lies
    within the real one: overlapping logged holds mean two drivers at once.
    """
    holds: list[tuple[datetime, datetime, str]] = []
    opened: dict[str, datetime] = {}
    for line in sorted(lines, key=lambda line: line["time"]):
        moment = datetime.fromisoformat(line["time"])
        if line["action"] == "acquired":
            opened[line["holder"]] = moment
        elif line["holder"] in opened:
            holds.append((opened.pop(line["holder"]), moment, line["holder"]))
    holds.sort()
    return [(a[2], b[2]) for index, a in enumerate(holds) for b in holds[index + 1:]
            if b[0] < a[1] and a[2] != b[2]]


def test_overlapping_holds_are_found() -> None:
    def line(second: int, holder: str, action: str) -> dict[str, Any]:
        return {"time": f"2026-11-30T12:00:{second:02d}+00:00", "holder": holder, "action": action}

    one_after_another = [line(1, "a", "acquired"), line(2, "a", "releasing"), line(2, "b", "acquired"),
                         line(3, "b", "releasing")]
    assert overlapping_holds(one_after_another) == []
    at_once = [line(1, "a", "acquired"), line(2, "b", "acquired"), line(3, "a", "releasing"), line(4, "b", "releasing")]
    assert overlapping_holds(at_once) == [("a", "b")]
