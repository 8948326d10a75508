"""Configuration layers (later wins): rule defaults → server config → per-project settings →
`.merge-assist.yml` on the project's default branch.

Every layer has the same shape and is validated the same way:

```yaml
rules:
  labels: {required: ["ready"], blocking: ["do-not-merge"]}
  freeze: {windows: ["Friday 13:00 - Monday 09:00"], timezone: "Europe/Berlin"}
merge: {squash: false}
```
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Protocol

import yaml

from merge_assist.rules.engine import CONTROL_OPTIONS, ON_ERROR_CHOICES
from merge_assist.rules.errors import NotFound
from merge_assist.rules.hookspecs import OptionError, RuleDescription
from merge_assist.rules.model import Project
from merge_assist.rules.ports import GitLabPort

REPO_CONFIG_FILE = ".merge-assist.yml"
SERVER_SOURCE = "server config"
PROJECT_SOURCE = "project settings"

SETTINGS_DEFAULTS: dict[str, dict[str, Any]] = {"merge": {
    "squash": None, "mode": "serial", "pipeline_limit": 4, "min_batch": 2, "max_batch": 4, "flaky_retries": 0,
    "target_pipeline": True,
}}
"""Non-rule settings, under `merge`:
- `squash`: true/false forces squashing; null keeps each MR's choice;
- `mode`: `serial` (one MR at a time: rebase, its pipeline, merge) or `train` (cars tested in parallel);
- `pipeline_limit`: train pipelines the lane may run at once (fit it to the project's runners);
- `min_batch`/`max_batch`: MRs per car (batches grow when more MRs wait than free pipelines);
- `flaky_retries`: how often a failure is re-tested before an MR is ejected as broken;
- `target_pipeline` (train): false pushes a landing car with `ci.skip`, so GitLab starts no pipeline
  for the target branch; the landed commit is a car's tested commit, so that pipeline would only
  test it again, on the same runners the cars need. Keep true when deployments run from it."""
MERGE_NUMBER_RANGES = {"pipeline_limit": (1, 50), "min_batch": (1, 20), "max_batch": (1, 20), "flaky_retries": (0, 5)}


class ConfigError(ValueError):
    """A configuration value is wrong: names the file (or layer), the key path and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class RuleCatalog(Protocol):
    """What configuration needs from the engine (`rules.engine.RuleEngine` fits)."""

    def describe_rules(self) -> list[RuleDescription]: ...

    def default_options(self) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class ConfigResult:
    """`effective` holds every rule's complete options (including `enabled` and `on_error`);
    `error` is a problem with a layer that was therefore left out (reported once per SHA)."""

    effective: dict[str, dict[str, Any]]
    enabled: frozenset[str]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: ConfigError | None = None
    error_pending: bool = False  # a broken file's error not reported yet (asked with report=False)


# -- validation ------------------------------------------------------------------------------

def _type_name(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _check_type(source: str, key: str, value: Any, default: Any) -> None:
    """A value must have the type of its default (lists: a list of strings)."""
    if default is None:
        if value is not None and not isinstance(value, bool):
            raise ConfigError(source, key, f"expected true, false or null, got {value!r}")
        return
    expected_number = isinstance(default, (int, float)) and not isinstance(default, bool)
    if expected_number:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(source, key, f"expected {_type_name(default)}, got {value!r}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(source, f"{key}[{index}]", f"expected a string, got {item!r}")


def _check_merge_value(source: str, key: str, name: str, value: Any) -> None:
    if name == "mode" and value not in ("serial", "train"):
        raise ConfigError(source, key, "expected one of: serial, train")
    if name in MERGE_NUMBER_RANGES:
        low, high = MERGE_NUMBER_RANGES[name]
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(source, key, f"expected a whole number from {low} to {high}, got {value!r}")


def _check_known(source: str, key_prefix: str, given: Mapping[str, Any], known: list[str], what: str) -> None:
    for key in given:
        if key not in known:
            raise ConfigError(
                source, f"{key_prefix}{key}", f"unknown {what}; expected one of: {', '.join(known)}",
            )


def _validate_rule(source: str, description: RuleDescription, given: Any) -> dict[str, Any]:
    prefix = f"rules.{description.name}"
    if isinstance(given, bool):  # `approvals: false` as a shorthand
        given = {"enabled": given}
    if not isinstance(given, Mapping):
        raise ConfigError(source, prefix, f"expected a mapping of options, got {given!r}")
    defaults: dict[str, Any] = {"enabled": True, "on_error": ON_ERROR_CHOICES[0], **description.defaults}
    _check_known(source, f"{prefix}.", given, list(defaults), "option")
    for key, value in given.items():
        _check_type(source, f"{prefix}.{key}", value, defaults[key])
    if "on_error" in given and given["on_error"] not in ON_ERROR_CHOICES:
        raise ConfigError(source, f"{prefix}.on_error", f"expected one of: {', '.join(ON_ERROR_CHOICES)}")
    rule_options = {key: value for key, value in given.items() if key not in CONTROL_OPTIONS}
    try:
        description.validate(rule_options)
    except OptionError as exc:
        raise ConfigError(source, f"{prefix}.{exc.key}", exc.reason) from None
    return dict(given)


def validate_layer(source: str, data: Any, rules: list[RuleDescription]) -> dict[str, dict[str, Any]]:
    """Check one layer and return it as {"rules": {...}, "merge": {...}}.

    `source` names the layer in errors (a file name, "server config", "project settings").
    The admin API should call this before storing per-project settings.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, "(top level)", "expected a mapping with `rules` and/or `merge`")
    sections = ["rules", *SETTINGS_DEFAULTS]
    _check_known(source, "", data, sections, "key")
    layer: dict[str, dict[str, Any]] = {}
    for section, given in data.items():
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ConfigError(source, section, f"expected a mapping, got {given!r}")
        if section == "rules":
            by_name = {description.name: description for description in rules}
            _check_known(source, "rules.", given, list(by_name), "rule")
            layer["rules"] = {name: _validate_rule(source, by_name[name], value) for name, value in given.items()}
        else:
            defaults = SETTINGS_DEFAULTS[section]
            _check_known(source, f"{section}.", given, list(defaults), "setting")
            for key, value in given.items():
                _check_type(source, f"{section}.{key}", value, defaults[key])
                _check_merge_value(source, f"{section}.{key}", key, value)
            if given.get("min_batch", 1) > given.get("max_batch", 20):
                raise ConfigError(source, f"{section}.min_batch", "must not be larger than max_batch")
            layer[section] = dict(given)
    return layer


def parse_yaml_layer(source: str, text: str, rules: list[RuleDescription]) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, where, f"invalid YAML: {problem}") from None
    return validate_layer(source, data, rules)


# -- layering --------------------------------------------------------------------------------

def combine_layers(catalog: RuleCatalog, *layers: Mapping[str, Mapping[str, Any]]) -> ConfigResult:
    """Overlay validated layers on the defaults, option by option (lists are replaced)."""
    effective = copy.deepcopy(catalog.default_options())
    settings = copy.deepcopy(SETTINGS_DEFAULTS)
    for layer in layers:
        for rule, options in layer.get("rules", {}).items():
            effective[rule].update(copy.deepcopy(options))
        for section in SETTINGS_DEFAULTS:
            settings[section].update(layer.get(section, {}))
    enabled = frozenset(rule for rule, options in effective.items() if options.get("enabled", True))
    return ConfigResult(effective, enabled, settings)


def resolve_config(
    catalog: RuleCatalog, server: Mapping[str, Any] | None, project_settings: Mapping[str, Any] | None,
    repo_layer: Mapping[str, Mapping[str, Any]] | None = None,
) -> ConfigResult:
    """Validate server and project layers and combine them with an already validated repo layer.

    A broken server config raises (it is an operator error, found at start-up); broken
    project settings are left out and returned as the result's error.
    """
    rules = catalog.describe_rules()
    server_layer = validate_layer(SERVER_SOURCE, server, rules)
    try:
        project_layer, error = validate_layer(PROJECT_SOURCE, project_settings, rules), None
    except ConfigError as exc:
        project_layer, error = {}, exc
    return replace(combine_layers(catalog, server_layer, project_layer, repo_layer or {}), error=error)


@dataclass(frozen=True)
class _RepoFile:
    layer: dict[str, dict[str, Any]] | None
    error: ConfigError | None


class RepoConfigCache:
    """Reads `.merge-assist.yml` from each project's default branch, cached per commit SHA.

    A broken file does not take effect: the project keeps its last valid file (or none), and
    the error is returned once per broken SHA so the caller can post it on the triggering MR (a caller
    that cannot post it asks with `report=False` and gets `error_pending` instead).
    """

    def __init__(self, gitlab: GitLabPort, catalog: RuleCatalog, *, max_entries: int = 1024) -> None:
        self._gitlab = gitlab
        self._catalog = catalog
        self._max_entries = max_entries
        self._files: OrderedDict[tuple[int, str], _RepoFile] = OrderedDict()
        self._last_valid: dict[int, dict[str, dict[str, Any]]] = {}
        self._reported: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def load(
        self, project: Project, server: Mapping[str, Any] | None = None,
        project_settings: Mapping[str, Any] | None = None, *, report: bool = True,
    ) -> ConfigResult:
        try:
            sha = self._gitlab.get_branch_sha(project.id, project.default_branch)
        except NotFound:  # an empty repository has no default branch yet
            sha = ""
        repo_file = self._read(project.id, sha)
        with self._lock:
            if repo_file.layer is not None:
                self._last_valid[project.id] = repo_file.layer
            repo_layer = self._last_valid.get(project.id, {})
            first_report = repo_file.error is not None and (project.id, sha) not in self._reported
            if first_report and report:
                self._reported.add((project.id, sha))
        result = resolve_config(self._catalog, server, project_settings, repo_layer)
        if first_report and not report:
            return replace(result, error_pending=True)
        if first_report:
            # The repo file's error goes first: whoever pushed it can fix it from the MR.
            return replace(result, error=repo_file.error)
        return result

    def _read(self, project_id: int, sha: str) -> _RepoFile:
        key = (project_id, sha)
        with self._lock:
            cached = self._files.get(key)
            if cached is not None:
                self._files.move_to_end(key)
                return cached
        text = self._gitlab.get_file(project_id, REPO_CONFIG_FILE, sha) if sha else None
        try:
            parsed = _RepoFile(
                parse_yaml_layer(REPO_CONFIG_FILE, text or "", self._catalog.describe_rules()), None,
            )
        except ConfigError as exc:
            parsed = _RepoFile(None, exc)
        with self._lock:
            self._files[key] = parsed
            while len(self._files) > self._max_entries:
                self._files.popitem(last=False)
        return parsed
