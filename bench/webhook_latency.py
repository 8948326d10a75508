"""Webhook acknowledgement latency and throughput of `POST /webhooks/gitlab`, next to a bare endpoint.

Two servers run in their own processes, both uvicorn on loopback:
  * bot:  the real `merge-assist serve` (embedded mode: SQLite in a temp dir, in-process queue; or
          `--mode production`: events published to Redis Streams). No GitLab is configured, so
          deliveries are authenticated, deduplication-keyed and queued exactly as in service, but
          no GitLab work follows them during the measurement.
  * bare: a Starlette app whose only route reads the body and answers 200 (the floor for this
          stack: uvicorn + h11 + Starlette + the same load generator).

Load generator (this process, asyncio + one pooled httpx.AsyncClient per run):
  * open loop: requests are sent at their scheduled times (fixed rate) whatever earlier responses
    did; latency is measured from the scheduled send time, so queueing in the client or the server
    is counted (no coordinated omission).
  * closed loop: N clients send back-to-back for a few seconds; throughput = completed / elapsed.

Each request is a realistic Note Hook (`/merge-assist merge` on an MR, ~4 KB) with a valid
X-Gitlab-Token and a unique Idempotency-Key.

    python bench/webhook_latency.py                            # 200 req/s for 10 s, then closed loop
    python bench/webhook_latency.py --rate 500 --seconds 5 --clients 32 --closed-seconds 5
    python bench/webhook_latency.py --requests 50 --rate 50    # tiny run (smoke test)

Targets: p99 under 10 ms at 200 requests/s; closed-loop throughput at least half the bare endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gitlab_sim.network import LOOPBACK, free_port  # noqa: E402

SECRET = "bench-webhook-secret"
P99_TARGET_MS = 10.0
THROUGHPUT_TARGET = 0.5
HOST = LOOPBACK

NOTE_HOOK: dict[str, Any] = {
    "object_kind": "note",
    "event_type": "note",
    "user": {"id": 17, "name": "Alice Developer", "username": "alice",
             "avatar_url": "https://gitlab.example.com/uploads/-/system/user/avatar/17/avatar.png",
             "email": "[REDACTED]"},
    "project_id": 42,
    "project": {
        "id": 42, "name": "app", "description": "The application.",
        "web_url": "https://gitlab.example.com/acme/app", "avatar_url": None,
        "git_ssh_url": "git@gitlab.example.com:acme/app.git",
        "git_http_url": "https://gitlab.example.com/acme/app.git", "namespace": "acme",
        "visibility_level": 0, "path_with_namespace": "acme/app", "default_branch": "main",
        "ci_config_path": None, "homepage": "https://gitlab.example.com/acme/app",
        "url": "git@gitlab.example.com:acme/app.git", "ssh_url": "git@gitlab.example.com:acme/app.git",
        "http_url": "https://gitlab.example.com/acme/app.git",
    },
    "object_attributes": {
        "attachment": None, "author_id": 17, "change_position": None, "commit_id": None,
        "created_at": "2024-11-20 10:15:42 UTC", "discussion_id": "0f3c9a1b2d4e5f60718293a4b5c6d7e8f9012345",
        "id": 90001, "line_code": None, "note": "/merge-assist merge", "noteable_id": 5001,
        "noteable_type": "MergeRequest", "original_position": None, "position": None, "project_id": 42,
        "resolved_at": None, "resolved_by_id": None, "resolved_by_push": None, "st_diff": None,
        "system": False, "type": None, "updated_at": "2024-11-20 10:15:42 UTC", "updated_by_id": None,
        "description": "/merge-assist merge", "action": "create",
        "url": "https://gitlab.example.com/acme/app/-/merge_requests/7#note_90001",
    },
    "repository": {"name": "app", "url": "git@gitlab.example.com:acme/app.git",
                   "description": "The application.", "homepage": "https://gitlab.example.com/acme/app"},
    "merge_request": {
        "assignee_id": None, "author_id": 17, "created_at": "2024-11-20 09:58:03 UTC",
        "description": "Adds the feature.\n\nCloses #12.", "draft": False, "head_pipeline_id": 3301,
        "id": 5001, "iid": 7, "last_edited_at": None, "last_edited_by_id": None,
        "merge_commit_sha": None, "merge_error": None, "merge_params": {"force_remove_source_branch": "1"},
        "merge_status": "can_be_merged", "merge_user_id": None, "merge_when_pipeline_succeeds": False,
        "milestone_id": None, "source_branch": "feature-7", "source_project_id": 42,
        "state_id": 1, "target_branch": "main", "target_project_id": 42, "time_estimate": 0,
        "title": "Add feature 7", "updated_at": "2024-11-20 10:15:42 UTC", "updated_by_id": None,
        "url": "https://gitlab.example.com/acme/app/-/merge_requests/7",
        "source": {"id": 42, "name": "app", "path_with_namespace": "acme/app", "default_branch": "main",
                   "web_url": "https://gitlab.example.com/acme/app"},
        "target": {"id": 42, "name": "app", "path_with_namespace": "acme/app", "default_branch": "main",
                   "web_url": "https://gitlab.example.com/acme/app"},
        "last_commit": {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "message": "Add feature 7\n",
                        "title": "Add feature 7", "timestamp": "2024-11-20T09:57:11+00:00",
                        "url": "https://gitlab.example.com/acme/app/-/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                        "author": {"name": "Alice Developer", "email": "[REDACTED]"}},
        "work_in_progress": False, "total_time_spent": 0, "time_change": 0, "human_total_time_spent": None,
        "human_time_change": None, "human_time_estimate": None, "assignee_ids": [], "reviewer_ids": [],
        "labels": [{"id": 25, "title": "backend", "color": "#3e8068", "project_id": 42,
                    "created_at": "2024-01-05T14:32:20.211Z", "updated_at": "2024-01-05T14:32:20.211Z",
                    "template": False, "description": None, "type": "ProjectLabel", "group_id": None}],
        "state": "opened", "blocking_discussions_resolved": True, "first_contribution": False,
        "detailed_merge_status": "mergeable",
    },
}


def note_payload(index: int) -> bytes:
    body = copy.deepcopy(NOTE_HOOK)
    body["object_attributes"]["id"] = 100_000 + index
    body["object_attributes"]["url"] = f"https://gitlab.example.com/acme/app/-/merge_requests/7#note_{100_000 + index}"
    return json.dumps(body).encode()


def headers(_index: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "GitLab/17.6.0", "X-Gitlab-Event": "Note Hook",
            "X-Gitlab-Token": SECRET, "X-Gitlab-Instance": "https://gitlab.example.com",
            "X-Gitlab-Event-UUID": str(uuid.uuid4()), "X-Gitlab-Webhook-UUID": "6b8e4d2a-0000-4000-8000-000000000042",
            "Idempotency-Key": str(uuid.uuid4())}


# -- servers ----------------------------------------------------------------------------------

def run_bare_server(port: int) -> None:
    """The reference: uvicorn + Starlette, one route that reads the body and answers 200."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def ok(request: Request) -> Response:
        await request.body()
        return JSONResponse({"status": "ok"})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/webhooks/gitlab", ok, methods=["POST"]), Route("/healthz", healthz)])
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def wait_healthy(server: Server, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} server exited ({server.process.returncode}):\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} server did not answer /healthz within {timeout:.0f}s:\n{server.log_tail()}")


def start_bot(workdir: Path, mode: str, redis_url: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGE_ASSIST_")}
    env.update({"MERGE_ASSIST_DATABASE_URL": f"sqlite:///{workdir / 'bot.db'}",
                "MERGE_ASSIST_WEBHOOK_SECRET": SECRET, "MERGE_ASSIST_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(REPO)})
    if mode == "production":
        env["MERGE_ASSIST_REDIS_URL"] = redis_url
        env["MERGE_ASSIST_REDIS_PREFIX"] = f"bench-latency-{uuid.uuid4().hex[:8]}"
    log_path = workdir / "bot.log"
    process = subprocess.Popen([sys.executable, "-m", "merge_assist.bot.cli", "serve", "--host", HOST, "--port", str(port)],
                               cwd=workdir, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    server = Server("bot", f"http://{HOST}:{port}", process, log_path)
    wait_healthy(server)
    return server


def start_bare(workdir: Path) -> Server:
    port = free_port()
    log_path = workdir / "bare.log"
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)],
                               cwd=workdir, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    server = Server("bare", f"http://{HOST}:{port}", process, log_path)
    wait_healthy(server)
    return server


# -- load generation ------------------------------------------------------------------------------

@dataclass
class OpenLoopResult:
    name: str
    planned_rate: float
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)  # from actual send to response
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0


@dataclass
class ClosedLoopResult:
    name: str
    clients: int
    completed: int
    errors: int
    elapsed: float

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class RawPool:
    """Keep-alive HTTP/1.1 connections over asyncio streams: far less client overhead than httpx.

    A request takes a free connection (waiting for one counts in its latency), writes the request,
    reads the status line, headers and Content-Length body, and gives the connection back.
    """

    def __init__(self, url: str, size: int) -> None:
        host_port = url.removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.size = size
        self._free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        self._all: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> "RawPool":
        for _ in range(self.size):
            self._free.put_nowait(None)  # opened lazily
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self._all:
            writer.close()

    async def post(self, path: str, body: bytes, extra: dict[str, str]) -> int:
        conn = await self._free.get()
        try:
            if conn is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self._all.append(writer)
                conn = (reader, writer)
            reader, writer = conn
            head = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
            if length:
                await reader.readexactly(length)
            if any(line.lower() == "connection: close" for line in lines[1:]):
                writer.close()
                conn = None
            return status
        except BaseException:
            conn = None
            raise
        finally:
            self._free.put_nowait(conn)


def client(url: str, pool: int, kind: str) -> Any:
    if kind == "raw":
        return RawPool(url, pool)
    import httpx

    class HttpxPool:
        def __init__(self) -> None:
            self._client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10.0),
                                             limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool))

        async def __aenter__(self) -> "HttpxPool":
            return self

        async def __aexit__(self, *_: object) -> None:
            await self._client.aclose()

        async def post(self, path: str, body: bytes, extra: dict[str, str]) -> int:
            return (await self._client.post(path, content=body, headers=extra)).status_code

    return HttpxPool()


async def open_loop(name: str, url: str, rate: float, count: int, pool: int, offset: int,
                    kind: str) -> OpenLoopResult:
    bodies = [note_payload(offset + i) for i in range(count)]
    result = OpenLoopResult(name, rate, count)
    async with client(url, pool, kind) as http:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05

        async def one(index: int) -> None:
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            try:
                status = await asyncio.wait_for(http.post("/webhooks/gitlab", bodies[index], headers(index)), 10.0)
            except Exception as exc:  # noqa: BLE001 - counted, not raised
                key = type(exc).__name__
                result.errors[key] = result.errors.get(key, 0) + 1
                return
            done = loop.time()
            if status != 200:
                key = f"HTTP {status}"
                result.errors[key] = result.errors.get(key, 0) + 1
                return
            result.latencies_ms.append((done - scheduled) * 1000)
            result.service_ms.append((done - sent) * 1000)

        await asyncio.gather(*(one(i) for i in range(count)))
        result.elapsed = loop.time() - start
    return result


async def closed_loop(name: str, url: str, clients: int, seconds: float, offset: int, kind: str) -> ClosedLoopResult:
    body = note_payload(offset)
    completed = errors = 0
    async with client(url, clients, kind) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal completed, errors
            while loop.time() < deadline:
                try:
                    status = await asyncio.wait_for(http.post("/webhooks/gitlab", body, headers(0)), 10.0)
                    if status == 200:
                        completed += 1
                    else:
                        errors += 1
                except Exception:  # noqa: BLE001
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = loop.time() - start
    return ClosedLoopResult(name, clients, completed, errors, elapsed)


# -- report ---------------------------------------------------------------------------------------

def print_open(result: OpenLoopResult) -> None:
    lat = result.latencies_ms
    errors = sum(result.errors.values())
    detail = f" ({', '.join(f'{k}: {v}' for k, v in sorted(result.errors.items()))})" if errors else ""
    print(f"  {result.name:<5} p50 {percentile(lat, 50):7.2f} ms  p90 {percentile(lat, 90):7.2f} ms  "
          f"p99 {percentile(lat, 99):7.2f} ms  max {max(lat, default=float('nan')):7.2f} ms  "
          f"rate {result.achieved_rate:6.1f}/s of {result.planned_rate:g}/s  ok {result.ok}/{result.sent}  "
          f"errors {errors}{detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests per second (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration (default 10 s)")
    parser.add_argument("--requests", type=int, default=None, help="open-loop request count (overrides --seconds)")
    parser.add_argument("--pool", type=int, default=64, help="open-loop connection pool size (default 64)")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop concurrent clients (default 16)")
    parser.add_argument("--closed-seconds", type=float, default=5.0, help="closed-loop duration (default 5 s)")
    parser.add_argument("--rounds", type=int, default=3, help="closed-loop rounds per server, alternating (default 3)")
    parser.add_argument("--warmup", type=int, default=200, help="requests per server before measuring")
    parser.add_argument("--mode", choices=("embedded", "production"), default="embedded",
                        help="bot mode: in-process queue (default) or Redis Streams")
    parser.add_argument("--redis-url", default=os.environ.get("MERGE_ASSIST_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: raw asyncio HTTP/1.1 keep-alive pool (default) or httpx.AsyncClient")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        run_bare_server(args.bare_server)
        return 0
    count = args.requests if args.requests is not None else max(1, int(args.rate * args.seconds))
    if count > 100_000 or args.rate > 5_000 or args.clients > 256 or args.closed_seconds > 60 or args.rounds > 10:
        parser.error("bounded: at most 100000 requests, 5000/s, 256 clients, 60 s closed loop, 10 rounds")

    workdir = Path(tempfile.mkdtemp(prefix="merge-assist-webhook-latency-"))
    servers: list[Server] = []
    try:
        bot = start_bot(workdir, args.mode, args.redis_url)
        servers.append(bot)
        bare = start_bare(workdir)
        servers.append(bare)
        print(f"bot:  merge-assist serve ({args.mode} mode, no GitLab configured) at {bot.url}, pid {bot.process.pid}")
        print(f"bare: uvicorn + Starlette, one route answering 200, at {bare.url}, pid {bare.process.pid}")
        print(f"load: this process (pid {os.getpid()}), asyncio + {args.client} client, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start; "
              f"payload {len(note_payload(0))} bytes (Note Hook), unique Idempotency-Key per request")
        offset = 0
        for server in (bot, bare):
            warm = asyncio.run(open_loop(server.name, server.url, max(args.rate, 100.0), args.warmup, args.pool, offset,
                                       args.client))
            offset += args.warmup
            if warm.errors:
                raise RuntimeError(f"{server.name}: errors while warming up: {warm.errors}\n{server.log_tail()}")

        print()
        print(f"open loop: {count} requests at {args.rate:g}/s (latency from the scheduled send time)")
        opened: dict[str, OpenLoopResult] = {}
        for server in (bot, bare):
            opened[server.name] = asyncio.run(open_loop(server.name, server.url, args.rate, count, args.pool, offset,
                                                          args.client))
            offset += count
            print_open(opened[server.name])

        print()
        print(f"closed loop: {args.clients} clients back to back for {args.closed_seconds:g} s, "
              f"{args.rounds} alternating rounds per server (median reported)")
        rounds: dict[str, list[ClosedLoopResult]] = {"bot": [], "bare": []}
        for _ in range(args.rounds):
            for server in (bot, bare):
                rounds[server.name].append(asyncio.run(closed_loop(server.name, server.url, args.clients,
                                                                   args.closed_seconds, offset, args.client)))
                offset += 1
        closed: dict[str, ClosedLoopResult] = {}
        for name, results in rounds.items():
            closed[name] = sorted(results, key=lambda r: r.throughput)[len(results) // 2]
            all_rounds = ", ".join(f"{r.throughput:.0f}" for r in results)
            print(f"  {name:<5} {closed[name].throughput:8.1f} requests/s median  (rounds: {all_rounds}; "
                  f"errors {sum(r.errors for r in results)})")

        for server in servers:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} server died during the run:\n{server.log_tail()}")

        bot_open, bare_open = opened["bot"], opened["bare"]
        p99_bot, p99_bare = percentile(bot_open.latencies_ms, 99), percentile(bare_open.latencies_ms, 99)
        p50_bot, p50_bare = percentile(bot_open.latencies_ms, 50), percentile(bare_open.latencies_ms, 50)
        ratio = closed["bot"].throughput / closed["bare"].throughput if closed["bare"].throughput else 0.0
        print()
        print(f"figure: webhook p50 {p50_bot:.2f} ms, p99 {p99_bot:.2f} ms at {args.rate:g} requests/s "
              f"(bare endpoint p50 {p50_bare:.2f} ms, p99 {p99_bare:.2f} ms; target p99 < {P99_TARGET_MS:g} ms: "
              f"{'meets target' if p99_bot < P99_TARGET_MS else 'MISSES target'})")
        print(f"figure: webhook throughput {closed['bot'].throughput:.0f} requests/s vs bare "
              f"{closed['bare'].throughput:.0f} requests/s, ratio {ratio:.2f} (target >= {THROUGHPUT_TARGET:g}: "
              f"{'meets target' if ratio >= THROUGHPUT_TARGET else 'MISSES target'})")
        print(f"figure: errors bot {sum(bot_open.errors.values()) + sum(r.errors for r in rounds['bot'])}, "
              f"bare {sum(bare_open.errors.values()) + sum(r.errors for r in rounds['bare'])}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
