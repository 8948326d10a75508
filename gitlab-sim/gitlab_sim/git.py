"""Real git repositories behind the simulator, driven through ``git`` subprocesses.

Each project is a bare repository. Commits are written with plumbing (``hash-object``,
``update-index`` on a throw-away index, ``write-tree``, ``commit-tree``,
``update-ref``), which is fast and needs no work tree. Merges use
``git merge-tree --write-tree`` (git >= 2.38); rebases replay commits with
``git rebase`` inside a temporary worktree, since git 2.39's merge-tree has no
``--merge-base`` to cherry-pick with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


class GitError(RuntimeError):
    """A git command failed unexpectedly."""


class MergeConflict(GitError):
    """Two histories cannot be combined without manual conflict resolution."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    tree: str
    author_name: str
    author_email: str
    authored_at: int
    committer_name: str
    committer_email: str
    committed_at: int
    message: str

    @property
    def title(self) -> str:
        return self.message.split("\n", 1)[0]


SYSTEM_IDENTITY = Identity("GitLab", "gitlab@example.com")
_COMMIT_FORMAT = "%H%x00%P%x00%T%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"


class GitRepo:
    """One bare repository."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path, default_branch: str) -> GitRepo:
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(["git", "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)])
        repo = cls(path)
        repo.git("config", "http.receivepack", "true")
        repo.git("config", "uploadpack.allowAnySHA1InWant", "true")
        return repo

    def git(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return _run(["git", "--git-dir", str(self.path), *args], stdin=stdin, env=env, check=check)

    def out(self, *args: str, env: dict[str, str] | None = None) -> str:
        return self.git(*args, env=env).stdout.decode().strip()

    # -- refs ---------------------------------------------------------------
    def branches(self) -> dict[str, str]:
        text = self.out("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/")
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if line)

    def branch_head(self, branch: str) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False)
        return result.stdout.decode().strip() or None

    def set_branch(self, branch: str, sha: str, expected_old: str | None = None) -> None:
        """Point ``branch`` at ``sha``; with ``expected_old``, fail if it moved meanwhile."""
        self.git("update-ref", f"refs/heads/{branch}", sha, *([expected_old] if expected_old else []))

    def delete_branch(self, branch: str) -> None:
        self.git("update-ref", "-d", f"refs/heads/{branch}")

    def resolve(self, rev: str) -> str | None:
        result = self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return result.stdout.decode().strip() or None

    # -- objects ------------------------------------------------------------
    def commit_info(self, sha: str) -> CommitInfo:
        fields = self.git("show", "-s", f"--format={_COMMIT_FORMAT}", sha).stdout.decode().split("\x00")
        return CommitInfo(sha=fields[0], parents=tuple(fields[1].split()), tree=fields[2],
                          author_name=fields[3], author_email=fields[4], authored_at=int(fields[5]),
                          committer_name=fields[6], committer_email=fields[7],
                          committed_at=int(fields[8]), message=fields[9].rstrip("\n") + "\n")

    def read_file(self, ref: str, path: str) -> bytes | None:
        result = self.git("cat-file", "blob", f"{ref}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    def log(self, head: str, exclude: str | None = None) -> list[str]:
        """Commits reachable from head but not from exclude, newest first."""
        args = ["rev-list", head] + ([f"^{exclude}"] if exclude else [])
        return self.out(*args).split()

    def commit_changes(self, sha: str) -> dict[str, list[str]]:
        """Paths a commit added, modified and removed (against its first parent), as push hooks list them."""
        text = self.out("diff-tree", "--root", "--no-commit-id", "-r", "--name-status", "-m", "--first-parent", sha)
        changes: dict[str, list[str]] = {"added": [], "modified": [], "removed": []}
        kinds = {"A": "added", "D": "removed"}
        for line in text.splitlines():
            status, _, path = line.partition("\t")
            changes[kinds.get(status[:1], "modified")].append(path)
        return changes

    def changed_paths(self, base: str, head: str) -> list[str]:
        return self.out("diff", "--name-only", base, head).splitlines()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.git("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        result = self.git("merge-base", a, b, check=False)
        return result.stdout.decode().strip() or None

    def write_commit(self, parent: str | None, files: dict[str, str | bytes | None], message: str,
                     author: Identity, committer: Identity | None = None) -> str:
        """Create a commit whose tree is ``parent``'s tree with ``files`` applied (None deletes)."""
        with tempfile.TemporaryDirectory(prefix="sim-index-") as tmp:
            env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            if parent:
                self.git("read-tree", parent, env=env)
            for path, content in files.items():
                if content is None:
                    # --force-remove wants a work tree; mode 0 through --index-info works in a bare repo.
                    self.git("update-index", "--index-info", stdin=f"0 {'0' * 40}\t{path}\n".encode(), env=env)
                    continue
                data = content.encode() if isinstance(content, str) else content
                blob = self.git("hash-object", "-w", "--stdin", stdin=data).stdout.decode().strip()
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self.out("write-tree", env=env)
        return self.commit_tree(tree, [parent] if parent else [], message, author, committer)

    def commit_tree(self, tree: str, parents: list[str], message: str, author: Identity,
                    committer: Identity | None = None) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        result = self.git(*args, stdin=message.encode(), env=_identity_env(author, committer or author))
        return result.stdout.decode().strip()

    # -- merging ------------------------------------------------------------
    def merge_tree(self, ours: str, theirs: str) -> str:
        """Tree of merging ``theirs`` into ``ours``; raises MergeConflict."""
        result = self.git("merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs,
                          check=False)
        if result.returncode == 1:
            raise MergeConflict(result.stdout.decode().split("\n", 1)[-1].strip())
        if result.returncode != 0:
            raise GitError(result.stderr.decode())
        return result.stdout.decode().split("\n", 1)[0].strip()

    def has_conflicts(self, ours: str, theirs: str) -> bool:
        try:
            self.merge_tree(ours, theirs)
        except MergeConflict:
            return True
        return False

    def rebase(self, head: str, onto: str, committer: Identity) -> str:
        """Replay ``head``'s own commits on top of ``onto``; returns the new head sha."""
        if self.is_ancestor(onto, head):
            return head
        worktree = Path(tempfile.mkdtemp(prefix="sim-rebase-"))
        try:
            self.git("worktree", "add", "--detach", "--quiet", str(worktree), head)
            env = _identity_env(committer, committer)
            result = _run(["git", "-C", str(worktree), "rebase", "--quiet", onto], env=env, check=False)
            if result.returncode != 0:
                _run(["git", "-C", str(worktree), "rebase", "--abort"], check=False)
                raise MergeConflict(result.stdout.decode() + result.stderr.decode())
            return _run(["git", "-C", str(worktree), "rev-parse", "HEAD"]).stdout.decode().strip()
        finally:
            self.git("worktree", "remove", "--force", str(worktree), check=False)
            shutil.rmtree(worktree, ignore_errors=True)
            self.git("worktree", "prune", check=False)


def _identity_env(author: Identity, committer: Identity) -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": committer.name, "GIT_COMMITTER_EMAIL": committer.email}


def _run(args: list[str], stdin: bytes | None = None, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull, **(env or {})}
    result = subprocess.run(args, input=stdin, capture_output=True, env=full_env, check=False)
    if check and result.returncode != 0:
        raise GitError(f"{' '.join(args)} failed: {result.stderr.decode().strip()}")
    return result
