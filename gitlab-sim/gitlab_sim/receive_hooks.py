"""Server-side git hooks for pushes over smart HTTP: GitLab's pre-receive checks and a push report.

``git http-backend`` runs ``git receive-pack``, which runs these hooks (found through
``core.hooksPath``, set only for smart-HTTP pushes, so the simulator's own plumbing never
triggers them). The pre-receive hook refuses, for the whole push and in the order of GitLab's
``Gitlab::Checks::BranchCheck``:

- force-pushes (non-fast-forward updates) to a protected branch without ``allow_force_push``,
- deleting a protected branch (GitLab allows it only in the web UI or API),
- pushes to a protected branch by a user below its ``push_access_level`` (0: no one).

The post-receive hook writes what git really applied, plus the push options
(``git push -o ci.skip``), to a report file the simulator reads after the push.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .mergeability import effective_access
from .state import Project, State, User

ZERO_SHA = "0" * 40
NOT_ALLOWED = "GitLab: You are not allowed to push code to protected branches on this project."
NO_FORCE_PUSH = "GitLab: You are not allowed to force push code to a protected branch on this project."
NO_DELETE = "GitLab: You can only delete protected branches using the web interface."

# Branch names cannot contain spaces, so space-separated lists are safe in sh.
PRE_RECEIVE = f"""#!/bin/sh
zero={ZERO_SHA}
status=0
while read -r old new ref; do
  branch=${{ref#refs/heads/}}
  [ "$branch" = "$ref" ] && continue
  case " $SIM_PROTECTED " in *" $branch "*) ;; *) continue ;; esac
  if [ "$old" != "$zero" ] && [ "$new" != "$zero" ] && ! git merge-base --is-ancestor "$old" "$new"; then
    case " $SIM_FORCE_ALLOWED " in *" $branch "*) ;; *)
      echo "{NO_FORCE_PUSH}" >&2; status=1; continue ;;
    esac
  fi
  if [ "$new" = "$zero" ]; then
    echo "{NO_DELETE}" >&2; status=1; continue
  fi
  case " $SIM_PUSH_DENIED " in *" $branch "*)
    echo "{NOT_ALLOWED}" >&2; status=1 ;;
  esac
done
exit $status
"""

POST_RECEIVE = """#!/bin/sh
[ -n "$SIM_PUSH_REPORT" ] || exit 0
{
  i=0
  while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
    eval "printf 'option %s\\n' \\"\\$GIT_PUSH_OPTION_$i\\""
    i=$((i + 1))
  done
  while read -r old new ref; do
    printf 'update %s %s %s\\n' "$old" "$new" "$ref"
  done
} > "$SIM_PUSH_REPORT"
"""


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    before: str | None  # None: the ref was created
    after: str | None  # None: the ref was deleted

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None


@dataclass(frozen=True)
class PushReport:
    updates: tuple[RefUpdate, ...]
    options: tuple[str, ...]


def install(hooks_dir: Path) -> Path:
    """Write the hook scripts into ``hooks_dir`` (once per simulator) and return it."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("pre-receive", PRE_RECEIVE), ("post-receive", POST_RECEIVE)):
        path = hooks_dir / name
        path.write_text(text)
        path.chmod(0o755)
    return hooks_dir


def push_environment(state: State, project: Project, user: User, hooks_dir: Path,
                     report: Path) -> dict[str, str]:
    """Environment for ``git http-backend`` so that its receive-pack runs our hooks for ``user``."""
    with state.lock:
        rules = list(project.protected_branches.values())
        level = effective_access(state, project, user)
    denied = [r.name for r in rules if r.push_access_level == 0 or level < r.push_access_level]
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(hooks_dir),
        "GIT_CONFIG_KEY_1": "receive.advertisePushOptions", "GIT_CONFIG_VALUE_1": "true",
        "SIM_PROTECTED": _words(r.name for r in rules),
        "SIM_PUSH_DENIED": _words(denied),
        "SIM_FORCE_ALLOWED": _words(r.name for r in rules if r.allow_force_push),
        "SIM_PUSH_REPORT": str(report),
    }


def read_report(report: Path) -> PushReport:
    """What the post-receive hook saw; empty when nothing was updated (no report written)."""
    if not report.exists():
        return PushReport((), ())
    updates: list[RefUpdate] = []
    options: list[str] = []
    for line in report.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "option":
            options.append(rest)
        elif kind == "update":
            before, after, ref = rest.split(" ", 2)
            updates.append(RefUpdate(ref, None if before == ZERO_SHA else before,
                                     None if after == ZERO_SHA else after))
    return PushReport(tuple(updates), tuple(options))


def _words(names: Iterable[str]) -> str:
    return " ".join(names)
