"""`merge-assist demo`: the bot in embedded mode against a local GitLab simulator.

It creates a sample project with merge requests and users of different rights, posts commands as
those users, and prints the queue as it drains, together with what the bot says on each MR.
"""

from __future__ import annotations

import logging
import secrets
import socket
import tempfile
import time
from pathlib import Path

from merge_assist.bot.embedded import BackgroundServer
from merge_assist.bot.runtime import Runtime
from merge_assist.bot.settings import Secret, Settings
from gitlab_sim import SimClock, Simulator, TreeCI
from gitlab_sim.sample import Team, make_team
from gitlab_sim.state import User
from merge_assist.rules.model import LaneKey, QueueEntry

SIM_SCALE = 60.0  # one real second is one simulated minute
PIPELINE_SECONDS = 240.0  # simulated: four seconds of real time


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


TRAIN_CONFIG = "merge:\n  mode: train\n  pipeline_limit: 3\n  min_batch: 2\n  max_batch: 3\n"


def build_world(root: Path) -> Team:
    """The shop project runs a merge train; its CI fails any tree that holds a `BROKEN` line, so
    the broken refactoring is real: every car carrying it fails, and it is found and removed."""
    sim = Simulator(root, SimClock.real_time(scale=SIM_SCALE)).start()
    sim.set_pipeline_plan(TreeCI(sim, duration=PIPELINE_SECONDS, fail_at=(0.3, 0.6), seed=1))
    return make_team(sim, "acme/shop", files={"README.md": "# shop\n", "cart.py": "ITEMS = []\n",
                                              ".merge-assist.yml": TRAIN_CONFIG})


MERGE_REQUESTS = (
    ("checkout-button", "alice", "Add a checkout button", "button\n"),
    ("payment-rounding", "bob", "Fix payment rounding (hotfix)", "rounding\n"),
    ("docs-typo", "rita", "Fix a typo in the docs", "typo\n"),
    ("refactor-cart", "alice", "Refactor the cart", "BROKEN\n"),
    ("search-box", "alice", "Add a search box", "search\n"),
    ("logo", "bob", "New logo", "logo\n"),
    ("sitemap", "alice", "Add a sitemap", "sitemap\n"),
    ("footer", "alice", "Tweak the footer", "footer\n"),
)
COMMANDS = (
    ("checkout-button", "alice", "/merge-assist merge"),
    ("docs-typo", "rita", "/merge-assist merge"),
    ("refactor-cart", "alice", "/merge-assist merge"),
    ("search-box", "alice", "/merge-assist merge"),
    ("logo", "bob", "/merge-assist merge"),
    ("payment-rounding", "bob", "/merge-assist merge --priority urgent"),
    ("sitemap", "alice", "/merge-assist merge"),
    ("footer", "alice", "/merge-assist merj"),
    ("footer", "alice", "/merge-assist merge --priority low"),
)

EXPECTED_ENTRIES = 7  # every MR but rita's, whose command is refused


class Narrator:
    """Prints queue transitions and the bot's comments as they happen."""

    def __init__(self, team: Team, runtime: Runtime, iids: dict[str, int]) -> None:
        self.team, self.runtime = team, runtime
        self.branch_of = {iid: branch for branch, iid in iids.items()}
        self.started = time.monotonic()
        self.seen_states: dict[int, tuple[str, str]] = {}
        self.seen_notes: set[int] = set()
        self.seen_cars: dict[int, str] = {}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def poll(self) -> list[QueueEntry]:
        entries = self.runtime.store.queue.all_entries()
        for entry in sorted(entries, key=lambda e: e.id):
            key = (entry.state.value, entry.reason)
            if self.seen_states.get(entry.id) != key:
                self.seen_states[entry.id] = key
                reason = f" ({entry.reason})" if entry.reason else ""
                self.say(f"queue  !{entry.mr_iid} {self.branch_of.get(entry.mr_iid, '')}: "
                         f"{entry.state.value} [{entry.priority.label}]{reason}")
        self._cars(entries)
        sim = self.team.sim
        with sim.state.lock:
            notes = [(n.id, n.mr_id, n.body) for n in sim.state.notes.values()
                     if n.author_id == self.team.bot.id and n.id not in self.seen_notes]
            iid_of = {mr.id: mr.iid for mr in sim.state.merge_requests.values()}
        for note_id, mr_id, body in sorted(notes):
            self.seen_notes.add(note_id)
            first = body.strip().splitlines()[0] if body.strip() else ""
            self.say(f"bot    on !{iid_of.get(mr_id)}: {first[:110]}")
        return entries


    def _cars(self, entries: list[QueueEntry]) -> None:
        iid_of = {entry.id: entry.mr_iid for entry in entries}
        lane = LaneKey(self.team.project.id, self.team.project.default_branch)
        for record in self.runtime.store.cars.lane_cars(lane):
            car = record.car
            if self.seen_cars.get(car.car_id) != car.status.value:
                self.seen_cars[car.car_id] = car.status.value
                riders = ", ".join(f"!{iid_of.get(e, e)}" for e in car.entry_ids)
                kind = "side car" if car.side else "car"
                self.say(f"train  {kind} {car.car_id} [{riders}]: {car.status.value}")


def _person(team: Team, username: str) -> User:
    return next(u for u in (team.dev, team.maintainer, team.reporter) if u.username == username)


def _api_requests_by(team: Team) -> int:
    return sum(1 for r in team.sim.request_log("api") if r.username == team.bot.username)


def run_demo(port: int = 8080, keep_running: bool = True) -> int:
    root = Path(tempfile.mkdtemp(prefix="merge-assist-demo-"))
    print("Merge Assist demo: embedded mode (SQLite + in-process queue) against a GitLab simulator")
    for talkative in ("merge_assist.train", "merge_assist.events"):  # the narrator tells the story
        logging.getLogger(talkative).setLevel(logging.WARNING)
    team = build_world(root / "gitlab")
    secret = secrets.token_urlsafe(16)
    settings = Settings(database_url=f"sqlite:///{root / 'merge-assist.db'}", gitlab_url=team.sim.url,
                        gitlab_token=Secret(team.bot.token), webhook_secret=Secret(secret),
                        jwt_secret=Secret(secrets.token_urlsafe(48)), recheck_seconds=5.0)
    runtime = Runtime.build(settings, run_workers=True)
    bob = runtime.store.users.ensure_gitlab_user("bob", team.maintainer.id)
    runtime.store.users.grant(bob.id, "priority_manager", granted_by="demo")
    dashboard_password = secrets.token_urlsafe(12)  # a throw-away demo database: shown so it can be tried
    demo_admin = runtime.store.users.create_local("admin", dashboard_password)
    runtime.store.users.grant(demo_admin.id, "admin", granted_by="demo")
    server = BackgroundServer(runtime, port=port if _port_free(port) else 0).start()
    team.sim.add_hook(team.project, f"{server.url}/webhooks/gitlab", secret)
    print(f"  GitLab simulator : {team.sim.url}  (pipelines take {PIPELINE_SECONDS / 60:.0f} simulated "
          f"minutes = {PIPELINE_SECONDS / SIM_SCALE:.0f}s)")
    print(f"  Merge Assist     : {server.url}   dashboard {server.url}/ (sign in as admin, password "
          f"{dashboard_password})  metrics {server.url}/metrics")
    print("  people           : alice (developer), bob (maintainer, priority_manager), rita (reporter)\n")
    try:
        return _play(team, runtime, server, keep_running)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        runtime.stop()
        team.sim.stop()


def _play(team: Team, runtime: Runtime, server: BackgroundServer, keep_running: bool) -> int:
    sim, project = team.sim, team.project
    iids = {}
    for branch, author, title, content in MERGE_REQUESTS:
        mr = sim.create_merge_request(project, branch, title=title, author=_person(team, author),
                                      files={f"{branch}.txt": content})
        iids[branch] = mr.iid
    narrator = Narrator(team, runtime, iids)
    for branch, author, text in COMMANDS:
        narrator.say(f"{author:6} on !{iids[branch]}: {text}")
        sim.post_note(project, iids[branch], _person(team, author), text)
        time.sleep(0.4)
        narrator.poll()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        entries = narrator.poll()
        if len(entries) >= EXPECTED_ENTRIES and all(e.state.is_final for e in entries):
            break
        time.sleep(0.3)
    time.sleep(0.5)
    entries = narrator.poll()
    merged = [e for e in entries if e.state.value == "merged"]
    print("\nSummary")
    for entry in sorted(entries, key=lambda e: e.id):
        print(f"  !{entry.mr_iid:<3} {entry.state.value:9} {entry.priority.label:7} {entry.reason}")
    if merged:
        print(f"  GitLab API requests by the bot: {_api_requests_by(team)} "
              f"for {len(merged)} merged MRs ({_api_requests_by(team) / len(merged):.1f} per merged MR)")
    print(f"  main now at {(sim.branch_head(project, 'main') or '')[:12]} in {sim.repo(project).path}")
    if keep_running:
        print(f"\nThe dashboard stays up at {server.url}/ ; press Ctrl-C to stop.")
        while True:
            time.sleep(3600)
    return 0 if merged else 1
