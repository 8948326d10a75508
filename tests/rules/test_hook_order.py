"""Hooks are called through pluggy: call order, tryfirst/trylast and wrappers as pluggy
documents them, with each implementation (wrappers included) isolated from the others."""

from __future__ import annotations

import logging
from typing import Any, Callable, Generator

import pytest

from merge_assist.plugins import BUILTIN_PLUGINS
from merge_assist.rules.engine import RuleEngine
from merge_assist.rules.hookspecs import hookimpl
from merge_assist.rules.metrics import RecordingMetrics
from merge_assist.rules.model import Outcome, RuleContext, Verdict
from merge_assist.rules.plugins import build_plugin_manager

EngineFactory = Callable[..., RuleEngine]


class Says:
    """Passes with its own name, recording the order plugins are asked in."""

    def __init__(self, name: str, asked: list[str], raises: bool = False) -> None:
        self.MERGE_ASSIST_NAME = name
        self.asked = asked
        self.raises = raises

    @hookimpl
    def merge_assist_check_merge(self, context: RuleContext) -> Verdict:
        self.asked.append(self.MERGE_ASSIST_NAME)
        if self.raises:
            raise RuntimeError(f"{self.MERGE_ASSIST_NAME} broke")
        return Verdict.passed("ignored", self.MERGE_ASSIST_NAME)


class SaysFirst(Says):
    @hookimpl(tryfirst=True)
    def merge_assist_check_merge(self, context: RuleContext) -> Verdict:
        return super().merge_assist_check_merge(context)


class SaysLast(Says):
    @hookimpl(trylast=True)
    def merge_assist_check_merge(self, context: RuleContext) -> Verdict:
        return super().merge_assist_check_merge(context)


def rules_in_order(engine: RuleEngine, context: RuleContext, options: Any = None) -> list[str]:
    return [verdict.rule for verdict in engine.check_merge(context, options).verdicts]


def test_the_last_registered_plugin_is_asked_first(make_engine: EngineFactory,
                                                   make_context: Callable[..., RuleContext]) -> None:
    asked: list[str] = []
    engine = make_engine(Says("one", asked), Says("two", asked), builtins=())
    assert rules_in_order(engine, make_context()) == ["two", "one"]
    assert asked == ["two", "one"]


def test_installed_plugins_are_asked_before_the_builtins_in_their_tuple_order(
        make_engine: EngineFactory, make_context: Callable[..., RuleContext]) -> None:
    engine = make_engine(Says("extra", []))
    assert rules_in_order(engine, make_context())[:3] == ["extra", "mr_state", "draft"]


def test_tryfirst_is_asked_first_and_trylast_last(make_engine: EngineFactory,
                                                 make_context: Callable[..., RuleContext]) -> None:
    asked: list[str] = []
    engine = make_engine(SaysFirst("early", asked), Says("middle", asked), SaysLast("late", asked))
    order = rules_in_order(engine, make_context())
    assert order[0] == "early" and order[-1] == "late"
    assert asked == ["early", "middle", "late"]
    assert order.index("middle") < order.index("mr_state")  # still before the built-ins


def test_a_crashing_tryfirst_plugin_does_not_stop_the_plugins_after_it(
        make_engine: EngineFactory, make_context: Callable[..., RuleContext]) -> None:
    asked: list[str] = []
    engine = make_engine(Says("after", asked), SaysFirst("broken", asked, raises=True), builtins=())
    decision = engine.check_merge(make_context())
    assert asked == ["broken", "after"]
    assert decision.verdicts == (Verdict.passed("broken", "crashed, ignored: RuntimeError"),
                                 Verdict.passed("after", "after"))


class Downgrades:
    """A new-style wrapper: sees every inner verdict and turns refusals into waits."""

    MERGE_ASSIST_NAME = "downgrades"

    def __init__(self) -> None:
        self.seen: list[list[Verdict]] = []

    @hookimpl(wrapper=True)
    def merge_assist_check_merge(self, context: RuleContext) -> Generator[None, list[Verdict], list[Verdict]]:
        verdicts = yield
        self.seen.append(list(verdicts))
        return [Verdict.wait(v.rule, f"softened: {v.reason}") if v.outcome is Outcome.REFUSE else v
                for v in verdicts]


def test_a_wrapper_sees_every_answer_and_its_result_is_the_decision(
        make_engine: EngineFactory, make_context: Callable[..., RuleContext]) -> None:
    wrapper = Downgrades()
    engine = make_engine(wrapper, SaysFirst("broken", [], raises=True))
    decision = engine.check_merge(make_context(mr={"draft": True}))
    seen_rules = [verdict.rule for verdict in wrapper.seen[0]]
    assert seen_rules[0] == "broken" and "draft" in seen_rules and "downgrades" not in seen_rules
    assert decision.outcome is Outcome.WAIT
    assert Verdict.wait("draft", "softened: the merge request is a draft; mark it as ready first") in decision.verdicts


class CountsOldStyle:
    """An old-style hookwrapper (`hookwrapper=True`) that replaces the result."""

    MERGE_ASSIST_NAME = "old_style"

    @hookimpl(hookwrapper=True)
    def merge_assist_check_merge(self, context: RuleContext) -> Generator[None, Any, None]:
        outcome = yield
        verdicts = outcome.get_result()
        outcome.force_result([*verdicts, Verdict.passed("old_style", f"{len(verdicts)} verdicts")])


def test_an_old_style_hookwrapper_can_replace_the_result(make_engine: EngineFactory,
                                                        make_context: Callable[..., RuleContext]) -> None:
    engine = make_engine(CountsOldStyle(), Says("one", []), builtins=())
    assert engine.check_merge(make_context()).verdicts == (
        Verdict.passed("one", "one"), Verdict.passed("old_style", "1 verdicts"),
    )


class BrokenWrapper:
    MERGE_ASSIST_NAME = "broken_wrapper"

    def __init__(self, where: str) -> None:
        self.where = where

    @hookimpl(wrapper=True)
    def merge_assist_check_merge(self, context: RuleContext) -> Generator[None, list[Verdict], list[Verdict]]:
        if self.where == "before":
            raise RuntimeError("before yield")
        verdicts = yield
        if self.where == "after":
            raise RuntimeError("after yield")
        if self.where == "twice":
            yield
        return verdicts


@pytest.mark.parametrize("where", ["before", "after", "twice"])
def test_a_crashing_wrapper_is_logged_counted_and_the_answers_pass_through(
        where: str, make_engine: EngineFactory, make_context: Callable[..., RuleContext],
        metrics: RecordingMetrics, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="merge_assist.rules")
    engine = make_engine(BrokenWrapper(where), Says("one", []), builtins=())
    assert engine.check_merge(make_context()).verdicts == (Verdict.passed("one", "one"),)
    assert metrics.count("plugin_error", "broken_wrapper", "merge_assist_check_merge") == 1
    assert any("'broken_wrapper'" in record.getMessage() for record in caplog.records)


def test_a_disabled_rule_is_skipped_and_its_wrapper_not_run(make_engine: EngineFactory,
                                                           make_context: Callable[..., RuleContext]) -> None:
    wrapper = Downgrades()
    engine = make_engine(wrapper, Says("one", []), builtins=())
    options = {"downgrades": {"enabled": False}, "one": {"enabled": False}}
    assert engine.check_merge(make_context(), options).verdicts == ()
    assert wrapper.seen == []


def test_calling_pm_hook_directly_still_isolates_plugins(make_context: Callable[..., RuleContext],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="merge_assist.rules")
    pm = build_plugin_manager(BUILTIN_PLUGINS[:1], load_entry_points=False,
                              extra=[Says("broken", [], raises=True)])
    verdicts = pm.hook.merge_assist_check_merge(context=make_context())
    assert [verdict.rule for verdict in verdicts] == ["mr_state"]  # the crash is left out
    assert any("'broken'" in record.getMessage() and record.exc_info for record in caplog.records)
