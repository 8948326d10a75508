"""Plugin manager: built-ins by name, overrides, and start-up errors for broken plugins."""

from __future__ import annotations

import types

import pytest

from merge_assist.plugins import BUILTIN_PLUGINS, approvals
from merge_assist.rules.hookspecs import RuleDescription, hookimpl
from merge_assist.rules.model import Outcome, Verdict
from merge_assist.rules.plugins import PluginSetupError, build_plugin_manager


def test_builtins_register_under_their_module_name():
    pm = build_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False)
    assert pm.get_plugin("approvals") is approvals
    assert pm.is_builtin("approvals") and pm.is_builtin("commands")


class LenientApprovals:
    """What a team would install to accept one approval less."""

    MERGE_ASSIST_NAME = "approvals"

    @hookimpl
    def merge_assist_describe_rule(self):
        return RuleDescription("approvals", "One approval less is fine.")

    @hookimpl
    def merge_assist_check_merge(self, context):
        return Verdict.passed("approvals", "lenient") if context.approvals.approvals_left <= 1 else None


def test_an_installed_plugin_with_a_builtin_name_replaces_it(make_engine, make_context):
    from merge_assist.rules.model import Approvals

    engine = make_engine(LenientApprovals())
    assert engine._pm.get_plugin("approvals") is not approvals
    assert not engine._pm.is_builtin("approvals")
    verdicts = engine.check_merge(make_context(approvals=Approvals(1, 1))).verdicts
    assert [v for v in verdicts if v.rule == "approvals"] == [Verdict.passed("approvals", "lenient")]
    # Only the built-in would have refused:
    builtin = make_engine().check_merge(make_context(approvals=Approvals(1, 1)))
    assert builtin.outcome is Outcome.REFUSE


def test_merge_assist_replaces_blocks_builtins_of_other_names(make_engine):
    plugin = types.SimpleNamespace(MERGE_ASSIST_NAME="strict_review", MERGE_ASSIST_REPLACES=("approvals", "discussions"))
    engine = make_engine(plugin)
    names = {description.name for description in engine.describe_rules()}
    assert "approvals" not in names and "discussions" not in names and "draft" in names


def misspelled_module(decorated: bool) -> types.ModuleType:
    module = types.ModuleType("acme_rules")

    def merge_assist_chek_merge(context):
        return None

    module.merge_assist_chek_merge = hookimpl(merge_assist_chek_merge) if decorated else merge_assist_chek_merge
    return module


@pytest.mark.parametrize("decorated", [True, False], ids=["marked", "unmarked"])
def test_misspelled_hookimpl_fails_at_startup_naming_plugin_and_hook(decorated):
    with pytest.raises(PluginSetupError) as caught:
        build_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False, extra=[misspelled_module(decorated)])
    message = str(caught.value)
    assert "'acme_rules'" in message and "'merge_assist_chek_merge'" in message
    assert "did you mean 'merge_assist_check_merge'" in message


def test_hookimpl_with_unknown_parameter_fails_at_startup():
    class WrongArgs:
        MERGE_ASSIST_NAME = "wrong_args"

        @hookimpl
        def merge_assist_check_merge(self, ctx):
            return None

    with pytest.raises(PluginSetupError, match="(?s)'wrong_args'.*ctx"):
        build_plugin_manager((), load_entry_points=False, extra=[WrongArgs()])


def test_two_installed_plugins_with_one_name_are_an_error():
    first = types.SimpleNamespace(MERGE_ASSIST_NAME="twin")
    second = types.SimpleNamespace(MERGE_ASSIST_NAME="twin")
    with pytest.raises(PluginSetupError, match="'twin'"):
        build_plugin_manager((), load_entry_points=False, extra=[first, second])
