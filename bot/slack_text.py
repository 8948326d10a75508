"""Reading the text of `/merge-assist ...` from Slack, in linear time and without regular expressions.

`merge --priority high <https://gitlab.example.com/g/app/-/merge_requests/7|!7>` →
SlashRequest(name="merge", args=("--priority", "high"), target=MergeRequestRef("g/app", 7)).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

MR_MARKER = "/-/merge_requests/"
MAX_IID = 2**31 - 1
PATH_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")


@dataclass(frozen=True)
class MergeRequestRef:
    project_path: str
    iid: int

    def __str__(self) -> str:
        return f"{self.project_path}!{self.iid}"


@dataclass(frozen=True)
class SlashRequest:
    name: str
    args: tuple[str, ...]
    target: MergeRequestRef | None = None


@dataclass(frozen=True)
class SlashProblem:
    """The text cannot be a command; `message` says why, for the person who typed it."""

    message: str


def unwrap_links(text: str) -> str:
    """Slack sends links as `<url|label>` or `<url>`; keep the url. One pass over the text."""
    parts: list[str] = []
    position = 0
    while True:
        start = text.find("<", position)
        end = text.find(">", start + 1) if start >= 0 else -1
        if end < 0:
            parts.append(text[position:])
            return "".join(parts)
        parts.append(text[position:start])
        parts.append(text[start + 1:end].partition("|")[0])
        position = end + 1


def is_project_path(path: str) -> bool:
    return bool(path) and "/" in path and all(c in PATH_CHARACTERS for c in path) and ".." not in path \
        and not path.startswith("/") and not path.endswith("/")


def _iid(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= MAX_IID else None


def http_parts(url: str) -> tuple[str, str, str] | None:
    """(scheme, host[:port], path prefix) of an http(s) URL, lower-cased; None if it is not one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, parts.netloc.lower(), parts.path


def target_from_url(url: str, gitlab_url: str | None) -> MergeRequestRef | SlashProblem:
    mine = http_parts(gitlab_url or "")
    theirs = http_parts(url)
    if theirs is None or MR_MARKER not in theirs[2]:
        return SlashProblem(f"`{url[:200]}` is not a merge request URL.")
    if mine is None or theirs[:2] != mine[:2] or not theirs[2].startswith(mine[2].rstrip("/") + "/"):
        host = mine[1] if mine else "the configured GitLab"
        return SlashProblem(f"I only work with merge requests on {host}; `{theirs[1][:100]}` is not it.")
    path, _, rest = theirs[2][len(mine[2].rstrip("/")) + 1:].partition(MR_MARKER)
    iid = _iid(rest.partition("/")[0])
    if iid is None or not is_project_path(path):
        return SlashProblem(f"`{url[:200]}` is not a merge request URL.")
    return MergeRequestRef(path, iid)


def target_from_reference(word: str) -> MergeRequestRef | None:
    """`group/project!12` → MergeRequestRef; None when the word is not such a reference."""
    path, bang, number = word.rpartition("!")
    iid = _iid(number) if bang else None
    return MergeRequestRef(path, iid) if iid is not None and is_project_path(path) else None


def parse_slash_text(text: str, gitlab_url: str | None) -> SlashRequest | SlashProblem:
    """The command word, its other words, and the merge request it names (URL or `path!iid`)."""
    words = unwrap_links(text).split()
    if not words:
        return SlashRequest("help", ())
    target: MergeRequestRef | None = None
    args: list[str] = []
    for word in words[1:]:
        found: MergeRequestRef | SlashProblem | None
        if "://" in word:
            found = target_from_url(word, gitlab_url)
        else:
            found = target_from_reference(word)
        if isinstance(found, SlashProblem):
            return found
        if found is None:
            args.append(word.lower() if word.startswith("--") else word)
        elif target is not None and found != target:
            return SlashProblem("Name one merge request per command.")
        else:
            target = found
    first = words[0]
    if "://" in first or target_from_reference(first) is not None:
        # `/merge-assist <MR URL>` alone asks for its status.
        return parse_slash_text(f"status {text}", gitlab_url)
    return SlashRequest(first.lower(), tuple(args), target)
