"""Per-plugin isolation of hook implementations, installed when a plugin registers.

pluggy stops a hook call at the first exception, so one broken plugin would hide every other
plugin's answer. `rules.plugins.MergeAssistPluginManager.register` therefore replaces the
function of each of the plugin's hook implementations with an isolating one (`isolate`). Hooks
are then called through pluggy itself (`pm.hook.<name>(...)`), so call order, `tryfirst`,
`trylast`, `firstresult` and wrappers behave as pluggy documents.

What an isolated implementation does with its plugin's answer or crash is decided by the
`HookCall` that is active for the current hook call (set by the engine with `HookCall.active`):
it may skip a plugin whose rule is disabled, give it its own rule options, turn its answer into
the value the other implementations and wrappers see, and turn a crash into a value (the
`on_error` policy). Without an active call (someone calling `pm.hook` directly) a crash is
logged and counted and the plugin's answer is left out.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Generator, Iterator, Mapping, cast

from pluggy import HookImpl

from merge_assist.rules.metrics import METRICS, Metrics

log = logging.getLogger("merge_assist.rules")

CONTEXT_ARGUMENT = "context"
"""Hook argument that carries a `RuleContext`; each plugin gets it with its own rule options."""


@dataclass(frozen=True)
class Answerer:
    """The plugin answering one hook call, with its rule and that rule's effective options."""

    plugin: str
    rule: str
    options: Mapping[str, Any] | None = None
    """None: the plugin gets the `context` argument as the caller gave it."""

    @property
    def enabled(self) -> bool:
        return bool((self.options or {}).get("enabled", True))

    @property
    def on_error(self) -> str:
        return str((self.options or {}).get("on_error", ""))


class CrashRecorder:
    """Logs a plugin's crash with its name and counts it; times each implementation."""

    def __init__(self, metrics: Metrics = METRICS) -> None:
        self._metrics = metrics

    def crash(self, plugin_name: str, hook_name: str, exc: Exception) -> None:
        self._metrics.plugin_error(plugin_name, hook_name)
        log.error(
            "plugin %r raised %s in %s: %s", plugin_name, type(exc).__name__, hook_name, exc,
            exc_info=exc, extra={"plugin": plugin_name, "hook": hook_name},
        )

    def observe(self, hook_name: str, seconds: float) -> None:
        self._metrics.hook_duration(hook_name, seconds)


def keep_answer(answerer: Answerer, value: object) -> object:
    return value


def leave_out(answerer: Answerer, exc: Exception) -> object:
    return None


def _plugin_is_its_rule(plugin_name: str) -> Answerer:
    return Answerer(plugin_name, plugin_name)


_active: ContextVar["HookCall | None"] = ContextVar("merge_assist_hook_call", default=None)


@dataclass
class HookCall:
    """How one call of one hook treats each plugin.

    `answerer` names the plugin's rule and options, or None to skip a disabled rule; `accept`
    turns an answer into what pluggy collects (raising TypeError for an answer of the wrong
    type, which counts as a crash); `on_crash` gives the value that stands for a crash (None
    leaves the plugin out). `answers` lists, in call order, who gave which collected value.
    """

    hook_name: str
    recorder: CrashRecorder
    answerer: Callable[[str], Answerer | None] = _plugin_is_its_rule
    accept: Callable[[Answerer, object], object] = keep_answer
    on_crash: Callable[[Answerer, Exception], object] = leave_out
    answers: list[tuple[Answerer, object]] = field(default_factory=list)

    @contextlib.contextmanager
    def active(self) -> Iterator["HookCall"]:
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def crashed(self, answerer: Answerer, exc: Exception) -> object:
        self.recorder.crash(answerer.plugin, self.hook_name, exc)
        return self.on_crash(answerer, exc)


def _current_call(hook_name: str, recorder: CrashRecorder) -> HookCall:
    call = _active.get()
    if call is None or call.hook_name != hook_name:
        return HookCall(hook_name, recorder)
    return call


def _with_own_options(args: tuple[object, ...], context_index: int | None,
                      answerer: Answerer) -> tuple[object, ...]:
    if context_index is None or answerer.options is None:
        return args
    context = args[context_index]
    # Each rule sees its own options; a copy, so a rule changing them changes nobody else's.
    own = replace(cast(Any, context), options=dict(answerer.options))
    return args[:context_index] + (own,) + args[context_index + 1:]


def isolate(impl: HookImpl, hook_name: str, recorder: CrashRecorder) -> None:
    """Replace `impl.function` by one that never raises (see the module docstring).

    `recorder` logs and counts crashes in calls that no `HookCall` is active for."""
    function = impl.function
    context_index = impl.argnames.index(CONTEXT_ARGUMENT) if CONTEXT_ARGUMENT in impl.argnames else None

    def isolated(*args: object, **kwargs: object) -> object:
        call = _current_call(hook_name, recorder)
        answerer = call.answerer(impl.plugin_name)
        if answerer is None or not answerer.enabled:
            return None
        started = time.perf_counter()
        try:
            value = function(*_with_own_options(args, context_index, answerer), **kwargs)
        except Exception as exc:
            return call.crashed(answerer, exc)
        finally:
            call.recorder.observe(hook_name, time.perf_counter() - started)
        if value is None:
            return None
        try:
            accepted = call.accept(answerer, value)
        except TypeError as exc:
            accepted = call.crashed(answerer, exc)
        if accepted is not None:
            call.answers.append((answerer, accepted))
        return accepted

    def isolated_wrapper(*args: object, **kwargs: object) -> Generator[None, object, object]:
        call = _current_call(hook_name, recorder)
        answerer = call.answerer(impl.plugin_name)
        if answerer is None or not answerer.enabled:
            return (yield)
        teardown = function(*_with_own_options(args, context_index, answerer), **kwargs)
        return (yield from _isolated_teardown(cast(Generator[None, object, object], teardown), call, answerer))

    # HookImpl.function is pluggy's documented attribute for the implementation; pluggy reads
    # argument names from the original function, so the isolating one only forwards them.
    setattr(impl, "function", isolated_wrapper if impl.wrapper or impl.hookwrapper else isolated)


def _isolated_teardown(teardown: Generator[None, object, object], call: HookCall,
                       answerer: Answerer) -> Generator[None, object, object]:
    """Drive a plugin's wrapper; when its own code raises, the crash is recorded and the
    result of the inner implementations passes through unchanged."""
    try:
        next(teardown)
    except Exception as exc:  # includes StopIteration: a wrapper that did not yield
        call.crashed(answerer, exc)
        return (yield)
    inner_error: BaseException | None = None
    try:
        outcome = yield
    except BaseException as exc:  # an inner implementation raised: the wrapper sees it, as in pluggy
        inner_error, outcome = exc, None
    try:
        if inner_error is not None:
            teardown.throw(inner_error)
        else:
            teardown.send(outcome)
    except StopIteration as finished:
        return finished.value
    except Exception as exc:
        if exc is inner_error:
            raise
        call.crashed(answerer, exc)
        if inner_error is not None:
            raise inner_error from None
        return outcome
    teardown.close()
    call.crashed(answerer, RuntimeError("hook wrapper yielded twice"))
    return outcome
