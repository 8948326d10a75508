"""``gitlab-sim``: start a simulator with a sample project for manual exploration."""

from __future__ import annotations

import argparse
import tempfile
import time

from .clock import SimClock
from .driver import Simulator
from .pipelines import PipelinePlan
from .state import DEVELOPER, MAINTAINER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gitlab-sim", description=__doc__)
    parser.add_argument("--port", type=int, default=8929)
    parser.add_argument("--root", default=None, help="directory for repositories (default: temporary)")
    parser.add_argument("--scale", type=float, default=60.0, help="simulated seconds per real second")
    parser.add_argument("--ci-minutes", type=float, default=10.0, help="simulated pipeline duration")
    args = parser.parse_args(argv)
    root = args.root or tempfile.mkdtemp(prefix="gitlab-sim-")
    sim = Simulator(root, SimClock.real_time(scale=args.scale)).start(port=args.port)
    sim.set_pipeline_plan(PipelinePlan("pass", duration=args.ci_minutes * 60))
    bot = sim.create_user("merge-bot", "Merge Bot")
    dev = sim.create_user("alice", "Alice")
    project = sim.create_project("acme/app", files={"README.md": "# app\n"})
    sim.add_member(sim.create_group("acme"), bot, MAINTAINER)
    sim.add_member(project, dev, DEVELOPER)
    sim.protect_branch(project, "main")
    sim.create_merge_request(project, "feature", title="Add feature", author=dev,
                             files={"feature.txt": "new\n"})
    print(f"GitLab simulator at {sim.url} (repositories in {root})")
    print(f"  bot   {bot.username}: PRIVATE-TOKEN {bot.token}")
    print(f"  human {dev.username}: PRIVATE-TOKEN {dev.token}")
    print(f"  clone {sim.clone_url(project, dev)}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
