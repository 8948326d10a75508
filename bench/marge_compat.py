"""Run the real marge-bot (PyPI ``marge-bot==1.4.*``) against the GitLab simulator.

marge-bot is installed into its own temporary venv (its pins may conflict with the
project's). The simulator runs on real time; one MR assigned to the marge user must
end up merged. Prints the API/git request counts and every request the simulator
could not serve (non-2xx), which is the list of missing endpoints/fields.

    python bench/marge_compat.py [--marge-venv DIR] [--ci-seconds 5] [--timeout 180]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitlab_sim import PipelinePlan, SimClock, Simulator  # noqa: E402
from gitlab_sim.state import DEVELOPER, MAINTAINER, RequestRecord  # noqa: E402

MARGE_REQUIREMENT = "marge-bot==1.4.*"
MARGE_LOG = "marge.log"


@dataclass
class MargeResult:
    merged: bool
    seconds: float
    api_requests: int
    git_requests: int
    failed_requests: list[str] = field(default_factory=list)
    endpoints: dict[str, int] = field(default_factory=dict)
    marge_log_tail: str = ""


def install_marge(venv_dir: Path) -> Path:
    """Create ``venv_dir`` with marge-bot unless it already has it; returns marge.app."""
    marge_app = venv_dir / "bin" / "marge.app"
    if not marge_app.exists():
        venv.create(venv_dir, with_pip=True)
        subprocess.run([str(venv_dir / "bin" / "pip"), "install", "-q", MARGE_REQUIREMENT], check=True)
    return marge_app


@contextlib.contextmanager
def marge_process(marge_app: Path, gitlab_url: str, token: str, workdir: Path,
                  options: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """marge-bot running against `gitlab_url` as the token's user, logging to workdir/marge.log;
    stopped on leaving the block."""
    token_file = workdir / "marge-token"
    token_file.write_text(token)
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "GIT_TERMINAL_PROMPT": "0"}
    with open(workdir / MARGE_LOG, "wb") as log:
        process = subprocess.Popen(
            [str(marge_app), "--gitlab-url", gitlab_url, "--auth-token-file", str(token_file), "--use-https", *options],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _endpoint(record: RequestRecord) -> str:
    parts = ["N" if p.isdigit() else p for p in record.path.split("/")]
    return f"{record.method} {'/'.join(parts)}"


def run(marge_app: Path, workdir: Path, ci_seconds: float = 5.0, timeout: float = 180.0,
        merge_method: str = "ff") -> MargeResult:
    sim = Simulator(workdir / "sim", SimClock.real_time(), rebase_delay=0.2)
    sim.start()
    try:
        marge = sim.create_user("marge-bot", "Marge Bot")
        dev = sim.create_user("alice", "Alice")
        project = sim.create_project("acme/app", merge_method=merge_method,
                                     files={"README.md": "hello\n", "app.py": "x = 1\n"})
        sim.add_member(sim.create_group("acme"), marge, MAINTAINER)
        sim.add_member(project, dev, DEVELOPER)
        sim.set_pipeline_plan(PipelinePlan("pass", duration=ci_seconds))
        sim.create_merge_request(project, "feature", title="Add feature", author=dev,
                                 files={"feature.txt": "new\n"}, assignees=[marge])
        sim.commit(project, "main", {"other.txt": "main moved on\n"}, author=dev)  # force a rebase
        sim.reset_request_log()
        started = time.monotonic()
        merged = False
        with marge_process(marge_app, sim.url, marge.token, workdir, ["--rebase-remotely", "--ci-timeout", "5min"]) \
                as process:
            deadline = started + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if sim.merge_request(project, 1).state == "merged":
                    merged = True
                    break
                time.sleep(0.2)
        elapsed = time.monotonic() - started
        records = sim.request_log()
        return MargeResult(
            merged=merged, seconds=elapsed,
            api_requests=sum(1 for r in records if r.kind == "api"),
            git_requests=sum(1 for r in records if r.kind == "git"),
            failed_requests=[f"{r.status} {r.method} {r.path}?{r.query}" for r in records
                             if r.status >= 400 and not (r.kind == "git" and r.status == 401)],
            endpoints=dict(collections.Counter(_endpoint(r) for r in records)),
            marge_log_tail="\n".join((workdir / MARGE_LOG).read_text(errors="replace").splitlines()[-120:]))
    finally:
        sim.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--marge-venv", type=Path, default=None,
                        help="venv holding marge-bot (created if missing; default: a temporary one)")
    parser.add_argument("--ci-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--merge-method", default="ff", choices=["merge", "rebase_merge", "ff"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marge-compat-") as tmp:
        workdir = Path(tmp)
        marge_app = install_marge(args.marge_venv or workdir / "venv")
        result = run(marge_app, workdir, args.ci_seconds, args.timeout, args.merge_method)
    print(f"merged: {result.merged} after {result.seconds:.1f}s")
    print(f"API requests: {result.api_requests}, git requests: {result.git_requests}")
    for endpoint, count in sorted(result.endpoints.items(), key=lambda item: -item[1]):
        print(f"  {count:4d}  {endpoint}")
    print("requests the simulator refused or could not serve:")
    print("\n".join(f"  {line}" for line in result.failed_requests) or "  none")
    if not result.merged:
        print("--- marge-bot log (tail) ---\n" + result.marge_log_tail)
    return 0 if result.merged else 1


if __name__ == "__main__":
    sys.exit(main())
