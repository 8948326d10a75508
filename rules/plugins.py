"""The plugin manager: built-in rules, installed plugins and overrides between them.

Name rules:
- a built-in module registers under its last dotted name (`plugins.approvals` → "approvals"),
  or its `MERGE_ASSIST_NAME` attribute;
- an installed plugin registers under its entry-point name in the `merge_assist` group;
- an `extra` plugin object registers under its `MERGE_ASSIST_NAME` attribute (else pluggy's
  canonical name).
A third-party plugin with the same name as a built-in replaces it; one can also replace
built-ins of other names with a `MERGE_ASSIST_REPLACES = ("approvals",)` attribute.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
from types import ModuleType
from typing import Iterable

import pluggy

from merge_assist.rules import hookspecs
from merge_assist.rules.hookspecs import PROJECT_NAME
from merge_assist.rules.isolation import CrashRecorder, isolate

ENTRY_POINT_GROUP = "merge_assist"
HOOK_PREFIX = "merge_assist_"

log = logging.getLogger("merge_assist.rules")


class PluginSetupError(RuntimeError):
    """A plugin cannot be loaded or does not fit the hook specifications."""


class MergeAssistPluginManager(pluggy.PluginManager):
    """A pluggy manager that knows which plugins are built-ins and isolates every plugin's
    hook implementations as it registers them (`rules.isolation`)."""

    def __init__(self, recorder: CrashRecorder | None = None) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.builtin_names: set[str] = set()
        self._recorder = recorder or CrashRecorder()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        plugin_name = super().register(plugin, name)
        if plugin_name is not None:
            for caller in self.get_hookcallers(plugin) or ():
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        isolate(impl, caller.name, self._recorder)
        return plugin_name

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        # An unmarked `merge_assist_*` function is a hook implementation too (as pytest does
        # for `pytest_*`), so that a forgotten decorator or a typo in a name cannot pass
        # silently: check_pending() then reports it.
        if opts is None and name.startswith(HOOK_PREFIX) and callable(getattr(plugin, name, None)):
            opts = pluggy.HookimplOpts(wrapper=False, hookwrapper=False, optionalhook=False,
                                       tryfirst=False, trylast=False, specname=None)
        return opts

    def is_builtin(self, plugin_name: str) -> bool:
        return plugin_name in self.builtin_names


def plugin_name_of(plugin: object) -> str:
    declared = getattr(plugin, "MERGE_ASSIST_NAME", None)
    if isinstance(declared, str):
        return declared
    if isinstance(plugin, ModuleType):
        return plugin.__name__.rsplit(".", 1)[-1]
    return type(plugin).__name__.lower()


def _replaced_names(plugin: object) -> tuple[str, ...]:
    return tuple(getattr(plugin, "MERGE_ASSIST_REPLACES", ()))


def _register(pm: MergeAssistPluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginSetupError(f"plugin {name!r} does not fit the hook specifications: {exc}") from exc
    except ValueError as exc:
        raise PluginSetupError(f"plugin {name!r} cannot be registered: {exc}") from exc


def _load_entry_points() -> list[tuple[str, object]]:
    loaded: dict[str, object] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in loaded:
            # Several distributions (e.g. an editable and a regular install) can advertise the
            # same plugin; the first one on sys.path wins, as for imports.
            continue
        try:
            loaded[entry_point.name] = entry_point.load()
        except Exception as exc:
            raise PluginSetupError(
                f"plugin {entry_point.name!r} (entry point {entry_point.value!r}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return list(loaded.items())


def _check_hook_names(pm: MergeAssistPluginManager) -> None:
    known = [name for name in dir(hookspecs) if name.startswith(HOOK_PREFIX)]
    problems: list[str] = []
    for hook_name, caller in vars(pm.hook).items():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            guess = difflib.get_close_matches(hook_name, known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.append(f"plugin {impl.plugin_name!r} implements unknown hook {hook_name!r}{hint}")
    if problems:
        raise PluginSetupError("; ".join(sorted(problems)))


def build_plugin_manager(
    builtins: Iterable[ModuleType],
    *,
    load_entry_points: bool = True,
    extra: Iterable[object] = (),
) -> MergeAssistPluginManager:
    """Register the built-in rules, installed plugins and `extra` objects, and verify hooks.

    Raises `PluginSetupError` at start-up when a plugin fails to import, implements a hook
    name that does not exist (e.g. `merge_assist_chek_merge`) or a hook with parameters the
    specification does not have.
    """
    pm = MergeAssistPluginManager()
    third_party = _load_entry_points() if load_entry_points else []
    third_party += [(plugin_name_of(plugin), plugin) for plugin in extra]

    replaced = {name for _, plugin in third_party for name in _replaced_names(plugin)}
    taken = {name for name, _ in third_party}
    # pluggy calls the last registered implementation first: registering the built-ins in
    # reverse makes them answer in the tuple's order, after every installed plugin.
    for module in reversed(tuple(builtins)):
        name = plugin_name_of(module)
        if name in taken or name in replaced:
            log.info("built-in plugin %r replaced by an installed plugin", name)
            continue
        _register(pm, module, name)
        pm.builtin_names.add(name)

    for name, plugin in third_party:
        _register(pm, plugin, name)

    _check_hook_names(pm)
    return pm
