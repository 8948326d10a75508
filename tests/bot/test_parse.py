import pytest

from merge_assist.bot.parse import BadSyntax, ParsedCommand, UnknownCommand, parse_command

KNOWN = ["merge", "cancel", "priority", "retry", "status", "help"]


@pytest.mark.parametrize("body, expected", [
    ("/merge-assist merge", ParsedCommand("merge", ())),
    ("  /merge-assist    merge   ", ParsedCommand("merge", ())),
    ("/MERGE-ASSIST MERGE", ParsedCommand("merge", ())),
    ("/merge-assist merge --priority high", ParsedCommand("merge", ("--priority", "high"))),
    ("/merge-assist merge --PRIORITY urgent", ParsedCommand("merge", ("--priority", "urgent"))),
    ("/merge-assist priority low", ParsedCommand("priority", ("low",))),
    ("/merge-assist", ParsedCommand("help", ())),
    ("\n\n/merge-assist status\nplease", ParsedCommand("status", ())),
    ("/merge-assist cancel\n> /merge-assist merge", ParsedCommand("cancel", ())),
    ("> /merge-assist merge", None),
    (">/merge-assist merge", None),
    ("```\n/merge-assist merge\n```", None),
    ("    `/merge-assist merge`", None),
    ("please /merge-assist merge", None),
    ("/merge-assistant merge", None),
    ("/merge merge-assist", None),
    ("LGTM\n/merge-assist merge", None),
    ("", None),
])
def test_parse_table(body, expected):
    assert parse_command(body, KNOWN) == expected


@pytest.mark.parametrize("body, word, suggestion", [
    ("/merge-assist merj", "merj", "merge"),
    ("/merge-assist stats", "stats", "status"),
    ("/merge-assist cancle", "cancle", "cancel"),
    ("/merge-assist deploy", "deploy", None),
])
def test_unknown_commands_suggest_the_closest(body, word, suggestion):
    result = parse_command(body, KNOWN)
    assert result == UnknownCommand(word, suggestion)
    if suggestion:
        assert f"/merge-assist {suggestion}" in result.message


def test_unbalanced_quotes_are_a_syntax_error():
    result = parse_command('/merge-assist merge "oops', KNOWN)
    assert isinstance(result, BadSyntax)


def test_plugin_commands_are_known():
    assert parse_command("/merge-assist ticket", KNOWN + ["ticket"]) == ParsedCommand("ticket", ())


def test_normalised_text_ignores_spacing_and_case_of_flags():
    a = parse_command("/merge-assist merge --priority high", KNOWN)
    b = parse_command("/merge-assist   MERGE  --PRIORITY high", KNOWN)
    assert a.text == b.text
