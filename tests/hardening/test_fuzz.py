"""Property-based fuzzing (hypothesis) of every input path the bot parses from GitLab.

GitLab payloads mutated from the real fixtures and command text up to GitLab's 1 MB note limit
go to a running bot (`merge-assist serve` in embedded mode, its own process as a user runs it,
real HTTP, real workers against the simulator) while a probe, its own process too, polls
`/healthz`: no answer is 5xx, no unhandled exception reaches the log, and /healthz keeps answering
within 100 ms (the stall detector the issue asks for: one comment used to stall the whole
process). The bot and the probe run apart from the test process so that the time measured is the
bot's: hypothesis, the simulator and the test's garbage collection sharing one interpreter with
the bot once made a probe wait 250 ms on a loaded CI machine.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from gitlab_sim import Simulator
from merge_assist.bot.parse import ParsedCommand, parse_command
from tests.e2e.harness import WEBHOOK_SECRET, World, embedded_env, make_world
from tests.helpers import REPO, free_port, http_ok, start_cli, wait_for

FIXTURES = Path(__file__).parent.parent / "bot" / "fixtures"
HEALTH_DEADLINE_SECONDS = 0.1
NOTE_LIMIT_CHARS = 1_000_000
EVENTS = ("Note Hook", "Merge Request Hook", "Pipeline Hook", "Job Hook", "Push Hook")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def base_payloads(world: World) -> dict[str, dict[str, Any]]:
    """The real fixtures (and a job and a push in GitLab's shape), pointed at the sample project."""
    project = {"id": world.project.id, "path_with_namespace": world.project.path_with_namespace,
               "default_branch": "main"}
    note = load("note_on_merge_request.json")
    note["object_attributes"]["note"] = "/merge-assist merge"
    job = {"object_kind": "build", "ref": "feature", "sha": "a" * 40, "build_id": 7, "build_name": "test",
           "build_status": "failed", "build_allow_failure": False, "project_id": project["id"],
           "project": project}
    push = {"object_kind": "push", "ref": "refs/heads/main", "after": "b" * 40, "project_id": project["id"],
            "project": project, "total_commits_count": 1,
            "commits": [{"id": "b" * 40, "added": [], "modified": [".merge-assist.yml"], "removed": []}]}
    payloads = {"Note Hook": note, "Merge Request Hook": load("merge_request_updated.json"),
                "Pipeline Hook": load("pipeline_event.json"), "Job Hook": job, "Push Hook": push}
    for body in payloads.values():
        body["project_id"] = project["id"]
        body["project"] = {**body.get("project", {}), **project}
    return payloads


# -- mutations ------------------------------------------------------------------------------------

def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, -1, 0]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
    st.sampled_from(["", "12a", "1e999", "/merge-assist merge", "\x00", "\ud7ff" * 3]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.integers(1, 400).map(deep),  # deeper nesting comes as raw bytes below
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):
            found += paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, payloads: dict[str, dict[str, Any]]) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(payloads)))
    body = copy.deepcopy(payloads[kind])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(body)))
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(HOSTILE_VALUES)
    event = draw(st.sampled_from(EVENTS + (kind, kind, "System Hook", "")))
    raw = json.dumps(body).encode()
    if draw(st.integers(0, 9)) == 0:  # now and then, broken bytes
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.sampled_from([b"\xff", b"NaN", b"[" * 5000, b"", b"1e999"])) + raw[cut:]
    return event, raw


COMMAND_TEXT = st.one_of(
    st.text(max_size=200),
    st.tuples(st.sampled_from(["/merge-assist x", "/merge-assist merge", "", "> /merge-assist"]),
              st.sampled_from([" ", "\t", "\n", "'", '"', "x ", "http://", "\\", "-- "]),
              st.one_of(st.integers(0, 2000), st.sampled_from([60_000, 250_000, NOTE_LIMIT_CHARS])),
              st.sampled_from(["", "y", '"', "\n/merge-assist merge"]))
    .map(lambda t: (t[0] + t[1] * t[2])[:NOTE_LIMIT_CHARS - 1] + t[3]),
)


# -- the running bot and its watchdogs --------------------------------------------------------------

@dataclass
class ServedBot:
    """`merge-assist serve` in embedded mode (SQLite, in-process queue and workers), its own process."""

    url: str
    log_path: Path

    def events_waiting(self) -> float | None:
        for family in text_string_to_metric_families(httpx.get(f"{self.url}/metrics", timeout=5).text):
            if family.name == "merge_assist_events_waiting" and family.samples:
                return family.samples[0].value
        return None

    def wait_until_drained(self) -> None:
        """Every event handled, twice in a row: the simulator's own webhooks trail the workers' calls."""
        def drained() -> bool:
            if self.events_waiting() != 0:
                return False
            time.sleep(0.3)
            return self.events_waiting() == 0

        wait_for(drained, timeout=60, message="the bot's events to be handled")

    def errors(self) -> list[str]:
        """Log lines at ERROR or above, with a traceback, or not JSON at all (a traceback printed raw)."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                found.append(line)
                continue
            if record.get("level") in ("ERROR", "CRITICAL") or "exception" in record:
                found.append(f"{record.get('logger')}: {record.get('message')}")
        return found


class HealthProbe:
    """tests.hardening.health_probe in its own process, polling /healthz until the block ends."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.slowest = 0.0
        self.failures: list[str] = []
        self.probes = 0

    def __enter__(self) -> "HealthProbe":
        self._process = subprocess.Popen([sys.executable, "-m", "tests.hardening.health_probe", self._url],
                                         cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *_: object) -> None:
        report, _ = self._process.communicate(input="", timeout=30)
        figures = json.loads(report)
        self.probes, self.slowest, self.failures = figures["probes"], figures["slowest"], figures["failures"]


@pytest.fixture
def fuzz_bot(sim: Simulator, tmp_path: Path) -> Iterator[tuple[ServedBot, World]]:
    world = make_world(sim)
    env = {**embedded_env(sim, world, f"sqlite:///{tmp_path / 'bot.db'}"), "MERGE_ASSIST_LOG_FORMAT": "json"}
    port = free_port()
    process = start_cli(["serve", "--port", str(port)], cwd=tmp_path, env=env, log_path=tmp_path / "serve.log")
    bot = ServedBot(f"http://127.0.0.1:{port}", tmp_path / "serve.log")
    try:
        wait_for(lambda: http_ok(f"{bot.url}/readyz"), timeout=30, message="serve /readyz")
        sim.add_hook(world.project, f"{bot.url}/webhooks/gitlab", WEBHOOK_SECRET)
        yield bot, world
    finally:
        process.terminate()
        process.wait(10)


def test_mutated_gitlab_payloads_never_get_5xx_nor_stall_the_bot(fuzz_bot: tuple[ServedBot, World]) -> None:
    bot, world = fuzz_bot
    payloads = base_payloads(world)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=bot.url, timeout=10) as client, HealthProbe(bot.url) as probe:

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(mutated(payloads))
        def deliver(delivery: tuple[str, bytes]) -> None:
            event, raw = delivery
            response = client.post("/webhooks/gitlab", content=raw,
                                   headers={"X-Gitlab-Event": event, "X-Gitlab-Token": WEBHOOK_SECRET})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (event, raw[:300], response.text)

        deliver()
        bot.wait_until_drained()
    print(f"\nwebhook answers: {dict(sorted(statuses.items()))}; /healthz probes: {probe.probes}, "
          f"slowest {probe.slowest * 1000:.1f} ms")
    assert not probe.failures
    assert probe.slowest < HEALTH_DEADLINE_SECONDS
    assert not bot.errors(), bot.errors()[:5]
    assert set(statuses) & {200} and set(statuses) & {400}  # both sides of the validation were reached


def test_command_text_up_to_the_note_limit_never_stalls_the_bot(fuzz_bot: tuple[ServedBot, World]) -> None:
    bot, world = fuzz_bot
    note = base_payloads(world)["Note Hook"]
    note["merge_request"]["iid"] = world.mr("fuzzed")
    with httpx.Client(base_url=bot.url, timeout=10) as client, HealthProbe(bot.url) as probe:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(COMMAND_TEXT, st.integers(1, 2**62))
        def comment(text: str, note_id: int) -> None:
            body = copy.deepcopy(note)
            body["object_attributes"].update(note=text, id=note_id)
            response = client.post("/webhooks/gitlab", content=json.dumps(body),
                                   headers={"X-Gitlab-Event": "Note Hook", "X-Gitlab-Token": WEBHOOK_SECRET})
            assert response.status_code in (200, 400), response.text
            result = parse_command(text, ["merge", "help", "status"])
            assert result is None or isinstance(result, ParsedCommand) or result.message

        comment()
        # The comment of finding 1: it used to keep the process busy for minutes.
        comment.hypothesis.inner_test("/merge-assist x" + " " * 60_000 + "y", 12345)
        bot.wait_until_drained()
    print(f"\n/healthz probes: {probe.probes}, slowest {probe.slowest * 1000:.1f} ms")
    assert not probe.failures
    assert probe.slowest < HEALTH_DEADLINE_SECONDS
    assert not bot.errors(), bot.errors()[:5]


def test_the_log_watchdog_flags_errors_tracebacks_and_raw_output(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text("\n".join([
        json.dumps({"level": "INFO", "logger": "merge_assist.events", "message": "webhook queued"}),
        json.dumps({"level": "WARNING", "logger": "merge_assist.queue", "message": "retrying",
                    "exception": "Traceback (most recent call last): ..."}),
        json.dumps({"level": "ERROR", "logger": "merge_assist.web", "message": "unhandled error on POST"}),
        "Exception in thread worker-1:",
    ]))
    assert ServedBot("http://127.0.0.1:1", log).errors() == [
        "merge_assist.queue: retrying", "merge_assist.web: unhandled error on POST", "Exception in thread worker-1:"]
