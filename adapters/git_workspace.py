"""Real git for merge trains: a cached clone per project that builds car commits and lands them.

The token never appears in a URL, a command line, `.git/config` or a log line: git gets it as an
HTTP header through `GIT_CONFIG_*` environment variables of its own process, and every error text
is passed through `redact` before it leaves this module.

Building a car (`build`): start from the car's base commit and apply each rider by the project's
merge method, as GitLab would merge it:
- `merge`: a merge commit of the MR's head (`--no-ff`), so the MR's head is in the target's history;
- `rebase_merge` (semi-linear): the MR's commits replayed on the base, then a merge commit;
- `ff`: the MR's commits replayed on the base.
With squash, the MR's change becomes one commit. Rebased or squashed heads are pushed to the MR's
source branch when the car lands (with `ci.skip`), so GitLab sees each MR's head in the target and
marks it merged. The car's commit goes to a temporary branch `merge-assist/train/<target>/<car>`,
where the project's CI tests it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Sequence

from merge_assist.rules.model import Project
from merge_assist.rules.train_ports import BuiltCar, Conflict, PushRefused, RiderSource, TargetMoved

log = logging.getLogger("merge_assist.git")
GIT_TIMEOUT_SECONDS = 300


class GitFailed(RuntimeError):
    """A git command failed for a reason the train cannot handle by planning again."""


class GitWorkspace:
    def __init__(self, root: Path, gitlab_url: str, token: str, *, author: tuple[str, str] = (
            "Merge Assist", "merge-assist@localhost")) -> None:
        self._root = root
        self._base_url = gitlab_url.rstrip("/")
        self._server = hashlib.sha256(self._base_url.encode()).hexdigest()[:12]  # clones of two servers never mix
        self._token = token
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        credentials = base64.b64encode(f"oauth2:{token}".encode()).decode()
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {credentials}",
            "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0], "GIT_COMMITTER_EMAIL": author[1],
        }

    # -- plumbing -----------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return text.replace(self._token, "[secret]")

    def _lock(self, project: Project) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(project.id, threading.Lock())

    def _run(self, repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], cwd=repo, env=self._env, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_SECONDS)
        if check and done.returncode != 0:
            raise GitFailed(self.redact(f"git {args[0]} failed: {done.stderr.strip()[-2000:]}"))
        return done

    def _git(self, repo: Path, *args: str) -> str:
        return self._run(repo, *args).stdout.strip()

    def _repo(self, project: Project) -> Path:
        repo = self._root / self._server / str(project.id)
        if not (repo / ".git").exists():
            repo.mkdir(parents=True, exist_ok=True)
            self._git(repo, "init", "-q")
            self._git(repo, "remote", "add", "origin", f"{self._base_url}/{project.path}.git")
            self._git(repo, "config", "gc.auto", "0")
        return repo

    def _fetch(self, repo: Path, shas: Sequence[str]) -> None:
        missing = [sha for sha in shas if self._run(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode]
        if missing:
            self._git(repo, "fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*")
        still = [sha for sha in missing if self._run(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode]
        if still:
            self._git(repo, "fetch", "-q", "origin", *still)

    # -- building -----------------------------------------------------------------------------

    def build(self, project: Project, base_sha: str, riders: Sequence[RiderSource], branch: str,
              target_branch: str) -> BuiltCar | Conflict:
        with self._lock(project):
            repo = self._repo(project)
            self._fetch(repo, [base_sha, *(rider.head_sha for rider in riders)])
            self._git(repo, "checkout", "-q", "--detach", "--force", base_sha)
            self._git(repo, "clean", "-q", "-fdx")
            updates: dict[str, str] = {}
            for rider in riders:
                applied = self._apply(repo, project, rider, target_branch)
                if isinstance(applied, Conflict):
                    return applied
                if applied is not None:
                    updates[rider.source_branch] = applied
            commit = self._git(repo, "rev-parse", "HEAD")
            self._push(repo, f"+{commit}:refs/heads/{branch}")
            return BuiltCar(commit, updates)

    def _apply(self, repo: Path, project: Project, rider: RiderSource, target: str) -> str | Conflict | None:
        """Apply one MR on HEAD; returns the head to push to its source branch on landing, if any."""
        message = (f"Merge branch '{rider.source_branch}' into '{target}'\n\n{rider.title}\n\n"
                   f"See merge request {project.path}!{rider.iid}")
        if project.merge_method == "merge" and not rider.squash:
            merged = self._run(repo, "merge", "-q", "--no-ff", "-m", message, rider.head_sha, check=False)
            if merged.returncode:
                self._run(repo, "merge", "--abort", check=False)
                return Conflict(rider.entry_id, self.redact(merged.stdout + merged.stderr)[-500:])
            return None
        onto = self._git(repo, "rev-parse", "HEAD")
        replayed = self._replay(repo, rider, onto)
        if isinstance(replayed, Conflict):
            return replayed
        if project.merge_method == "ff":
            return replayed
        self._git(repo, "checkout", "-q", "--detach", onto)
        self._git(repo, "merge", "-q", "--no-ff", "-m", message, replayed)
        return replayed

    def _replay(self, repo: Path, rider: RiderSource, onto: str) -> str | Conflict:
        """The MR's commits (or one squashed commit) on top of `onto`; HEAD ends there."""
        fork = self._git(repo, "merge-base", onto, rider.head_sha)
        if rider.squash:
            merged = self._run(repo, "merge", "-q", "--squash", rider.head_sha, check=False)
            if merged.returncode:
                self._run(repo, "reset", "-q", "--hard", onto, check=False)
                return Conflict(rider.entry_id, self.redact(merged.stdout + merged.stderr)[-500:])
            self._git(repo, "commit", "-q", "--allow-empty", "-m", rider.title or f"Squashed !{rider.iid}")
            return self._git(repo, "rev-parse", "HEAD")
        commits = self._git(repo, "rev-list", "--reverse", "--no-merges", f"{fork}..{rider.head_sha}").split()
        for commit in commits:
            picked = self._run(repo, "cherry-pick", "--allow-empty", "--keep-redundant-commits", commit, check=False)
            if picked.returncode:
                self._run(repo, "cherry-pick", "--abort", check=False)
                self._run(repo, "reset", "-q", "--hard", onto, check=False)
                return Conflict(rider.entry_id, self.redact(picked.stdout + picked.stderr)[-500:])
        return self._git(repo, "rev-parse", "HEAD")

    # -- landing ------------------------------------------------------------------------------

    def land(self, project: Project, target_branch: str, commit_sha: str, source_updates: dict[str, str],
             *, target_pipeline: bool = True) -> None:
        with self._lock(project):
            repo = self._repo(project)
            if source_updates:
                refspecs = [f"+{sha}:refs/heads/{branch}" for branch, sha in sorted(source_updates.items())]
                self._push(repo, *refspecs, options=("ci.skip",))
            self._push(repo, f"{commit_sha}:refs/heads/{target_branch}", options=() if target_pipeline else ("ci.skip",))

    def rider_commits(self, project: Project, commit_sha: str, riders: Sequence[RiderSource],
                      source_updates: dict[str, str]) -> dict[int, str]:
        if project.merge_method == "ff":  # the car is the riders' replayed commits one after the other
            return {rider.entry_id: source_updates.get(rider.source_branch, rider.head_sha) for rider in riders}
        with self._lock(project):  # otherwise one merge commit a rider, on the car's first-parent line
            repo = self._repo(project)
            self._fetch(repo, [commit_sha])
            line = self._git(repo, "rev-list", "--first-parent", f"--max-count={len(riders)}", commit_sha).split()
        return {rider.entry_id: sha for rider, sha in zip(riders, reversed(line))}

    def delete_branches(self, project: Project, branches: Sequence[str]) -> None:
        """Delete temporary branches with one git push (no API request); absent ones are fine."""
        if not branches:
            return
        with self._lock(project):
            repo = self._repo(project)
            self._run(repo, "push", "--porcelain", "origin", *(f":refs/heads/{branch}" for branch in branches),
                      check=False)

    def _push(self, repo: Path, *refspecs: str, options: Sequence[str] = ()) -> None:
        args = ["push", "--porcelain", *(f"--push-option={option}" for option in options), "origin", *refspecs]
        pushed = self._run(repo, *args, check=False)
        if pushed.returncode == 0:
            return
        text = self.redact(pushed.stdout + pushed.stderr)
        if "non-fast-forward" in text or "fetch first" in text or "[rejected]" in text:
            raise TargetMoved(text[-500:])
        raise PushRefused(text[-1000:])
