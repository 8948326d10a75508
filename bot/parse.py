"""Parse `/merge-assist <command> [args]` from the first line of a comment or a Slack command."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from typing import Iterable

PREFIX = "/merge-assist"
_FIRST_LINE = re.compile(r"^[ \t]*/merge-assist(?:[ \t]+(?P<rest>.*?))?[ \t]*$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    args: tuple[str, ...]

    @property
    def text(self) -> str:
        """A normalised form, used to tell whether an edit changed the command."""
        return " ".join((self.name, *self.args))


@dataclass(frozen=True)
class UnknownCommand:
    word: str
    suggestion: str | None

    @property
    def message(self) -> str:
        hint = f" Did you mean `{PREFIX} {self.suggestion}`?" if self.suggestion else ""
        return f"I don't know the command `{self.word}`.{hint}"


@dataclass(frozen=True)
class BadSyntax:
    message: str


ParseResult = ParsedCommand | UnknownCommand | BadSyntax | None


def first_line(body: str) -> str:
    """The comment's first line; a quote (`>`) or code fence there is not a command."""
    for line in body.splitlines():
        if line.strip():
            return line
    return ""


def parse_command(body: str, known: Iterable[str]) -> ParseResult:
    """None when the text is not addressed to the bot; otherwise the command or why it is wrong."""
    match = _FIRST_LINE.match(first_line(body))
    if match is None:
        return None
    rest = (match.group("rest") or "").strip()
    if not rest:
        return ParsedCommand("help", ())
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        return BadSyntax(f"I could not read the arguments: {exc}.")
    name = words[0].lower()
    names = sorted(set(known))
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        return UnknownCommand(words[0], close[0] if close else None)
    return ParsedCommand(name, tuple(w.lower() if w.startswith("--") else w for w in words[1:]))
