"""Parse `/merge-assist <command> [args]` from the first line of a comment or a Slack command."""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass
from typing import Iterable

PREFIX = "/merge-assist"
MAX_COMMAND_CHARS = 1000
"""Longer command lines are refused unread: shlex and difflib are too slow on a 1 MB comment."""
_BLANK = " \t"


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
    """The comment's first non-blank line; a quote (`>`) or code fence there is not a command."""
    text = body.lstrip()
    return text.partition("\n")[0].partition("\r")[0]


def _arguments(line: str) -> str | None:
    """The text after `/merge-assist` on a command line, or None when the line is not one.

    Plain string scanning, linear in the line's length: no regular expression can backtrack.
    """
    stripped = line.lstrip(_BLANK)
    if stripped[:len(PREFIX)].lower() != PREFIX:
        return None
    rest = stripped[len(PREFIX):]
    if rest and rest[0] not in _BLANK:
        return None
    return rest.strip(_BLANK)


def parse_command(body: str, known: Iterable[str]) -> ParseResult:
    """None when the text is not addressed to the bot; otherwise the command or why it is wrong."""
    rest = _arguments(first_line(body))
    if rest is None:
        return None
    if len(rest) > MAX_COMMAND_CHARS:
        return BadSyntax(f"The command is too long (over {MAX_COMMAND_CHARS} characters).")
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
