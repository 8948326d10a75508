"""Tree-dependent CI: a pipeline passes or fails because of the files at its commit.

``TreeCI`` is a pipeline resolver (``sim.set_pipeline_plan(TreeCI(sim))``) that reads the
tree at the pipeline's sha with real git and judges it with a rule, so a bad merge request
fails wherever it goes and two merge requests can each pass alone and fail together.

The ready-made rule, ``markers_and_calls``, fails a tree when

- any file has a line that is exactly ``BROKEN`` (a bad MR), or
- a line ``call <name>`` in a file under ``src/`` (outside ``src/defs/``) names a function
  that no file ``src/defs/<name>`` defines (a semantic conflict: MR A renames
  ``src/defs/old`` to ``src/defs/new`` and fixes its callers, MR B adds ``call old``).

On top of the tree's verdict, each pipeline (and each retry) is flaky with probability
``flaky_rate``. A failing pipeline's failing job ends at a fraction of ``duration`` drawn
uniformly from ``fail_at`` (or returned by a callable): once per cause of failure, as the same
broken test fails at the same point of every pipeline that holds it (a tree with several causes
fails at the earliest), and once per pipeline for a flaky failure. Draws come from RNGs seeded by
``(seed, project, cause)`` and ``(seed, project, sha, attempt)``, so a run is reproducible whatever
order pipelines start in.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .git import GitRepo
from .pipelines import PipelinePlan, PipelineRequest

if TYPE_CHECKING:
    from .driver import Simulator

BROKEN_MARKER = "BROKEN"
SOURCE_DIR = "src/"
DEFINITIONS_DIR = "src/defs/"
CALL_LINE = re.compile(r"^\s*call\s+(\S+)\s*$")


@dataclass(frozen=True)
class TreeVerdict:
    passed: bool
    reason: str | None = None  # why the tree fails, for test messages
    causes: tuple[str, ...] = ()  # every reason it fails (the reason alone when a rule gives no list)

    @property
    def all_causes(self) -> tuple[str, ...]:
        return self.causes or ((self.reason or "failed",) if not self.passed else ())


TreeRule = Callable[[Mapping[str, bytes]], TreeVerdict]  # path -> content of every file
FailAt = tuple[float, float] | Callable[[PipelineRequest], float]


def markers_and_calls(files: Mapping[str, bytes]) -> TreeVerdict:
    """The ready-made rule: no ``BROKEN`` line anywhere, every ``call <name>`` defined."""
    defined = {path.removeprefix(DEFINITIONS_DIR) for path in files if path.startswith(DEFINITIONS_DIR)}
    causes: list[str] = []
    for path, content in sorted(files.items()):
        lines = content.decode(errors="replace").splitlines()
        if any(line.strip() == BROKEN_MARKER for line in lines):
            causes.append(f"{path} is marked {BROKEN_MARKER}")
        if not path.startswith(SOURCE_DIR) or path.startswith(DEFINITIONS_DIR):
            continue
        for line in lines:
            match = CALL_LINE.match(line)
            if match and match.group(1) not in defined:
                causes.append(f"{path} calls undefined {match.group(1)}")
    return TreeVerdict(not causes, causes[0] if causes else None, tuple(causes))


@dataclass
class TreeCI:
    """A pipeline resolver whose outcome depends on the tree at the pipeline's sha."""

    sim: Simulator
    rule: TreeRule = markers_and_calls
    duration: float = 600.0
    fail_at: FailAt = (0.2, 1.0)
    flaky_rate: float = 0.0
    seed: int = 0
    flaky_pipeline_ids: set[int] = field(default_factory=set)  # pipelines failed by flakiness alone
    _verdicts: dict[tuple[str, str], TreeVerdict] = field(default_factory=dict)
    _blobs: dict[str, bytes] = field(default_factory=dict)

    def __call__(self, request: PipelineRequest) -> PipelinePlan:
        rng = random.Random(f"{self.seed}:{request.project_path}:{request.sha}:{request.attempt}")
        flaky = rng.random() < self.flaky_rate
        verdict = self.verdict(request.project_path, request.sha)
        if verdict.passed and not flaky:
            return PipelinePlan("pass", self.duration)
        if flaky:
            self.flaky_pipeline_ids.add(request.pipeline_id)
        if callable(self.fail_at):
            fraction = self.fail_at(request)
        else:
            draws = [random.Random(f"{self.seed}:{request.project_path}:{cause}").uniform(*self.fail_at)
                     for cause in verdict.all_causes]
            if flaky:
                draws.append(rng.uniform(*self.fail_at))
            fraction = min(draws)
        return PipelinePlan("fail", self.duration, fail_at=min(max(fraction, 1e-6), 1.0))

    def verdict(self, project_path: str, sha: str) -> TreeVerdict:
        """The rule's verdict on the tree of ``sha`` (any commit-ish), cached by tree id."""
        repo = self._repo(project_path)
        tree = repo.out("rev-parse", f"{sha}^{{tree}}")
        key = (project_path, tree)
        if key not in self._verdicts:
            self._verdicts[key] = self.rule(self._files(repo, tree))
        return self._verdicts[key]

    def tree_passes(self, project_path: str, sha: str) -> bool:
        return self.verdict(project_path, sha).passed

    def _repo(self, project_path: str) -> GitRepo:
        project = self.sim.state.project_by_path(project_path)
        if project is None:
            raise KeyError(project_path)
        return self.sim.repo(project)

    def _files(self, repo: GitRepo, tree: str) -> dict[str, bytes]:
        listing = repo.git("ls-tree", "-r", "-z", tree).stdout.decode().split("\0")
        blobs: dict[str, str] = {}
        for entry in filter(None, listing):
            meta, _, path = entry.partition("\t")
            _, kind, blob = meta.split()
            if kind == "blob":
                blobs[path] = blob
        missing = sorted({b for b in blobs.values() if b not in self._blobs})
        if missing:
            self._blobs.update(_read_blobs(repo, missing))
        return {path: self._blobs[blob] for path, blob in blobs.items()}


def _read_blobs(repo: GitRepo, shas: list[str]) -> dict[str, bytes]:
    """Contents of many blobs with one ``git cat-file --batch``."""
    output = repo.git("cat-file", "--batch", stdin="".join(f"{s}\n" for s in shas).encode()).stdout
    contents: dict[str, bytes] = {}
    position = 0
    for sha in shas:
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        contents[sha] = output[header_end + 1:header_end + 1 + size]
        position = header_end + 1 + size + 1
    return contents
