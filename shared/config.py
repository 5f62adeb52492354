"""Configuration: one YAML file plus environment overrides, validated by pydantic.

The file (``config/paper.yaml`` under the stack home by default, or ``LIGHTER_STACK_CONFIG``, or
``--config``) has
top-level settings shared by all services and one section per service under ``services:``.
Each service validates its own section with its own pydantic model through
:meth:`StackConfig.section`, so a bad value stops that service at start-up with a message naming
the field, e.g. ``services.executor.max_position.BTC: Input should be a valid number``.

Environment overrides: ``LS_<KEY>__<SUBKEY>=value`` sets a nested key (case-insensitive; ``_``
in a service name also matches ``-``), e.g. ``LS_VENUE__REST_URL=http://venue-sim:8090`` or
``LS_SERVICES__STRATEGY_TREND__HTTP_PORT=9102``. Values are parsed as YAML scalars.
``REDIS_URL`` sets ``redis_url``.

Layering: several files can be stacked, later ones winning key by key (mappings merge
recursively, any other value replaces): ``load_config([base, profile, ...])``,
``lighter-stack run SERVICE --config base.yaml --profile profiles/SOL.yaml`` or the environment
variable ``LIGHTER_STACK_PROFILES`` (paths separated by ``os.pathsep``, layered after the given
files). This is how a market profile (``lighter-stack profile``, docs/profiles.md) is applied
without editing the base file. Environment overrides apply last.

Typos stop start-up: every model forbids keys it does not declare (``config error:
services.executor.max_postion: unknown key (known: ...)``), and :func:`check_sections` (or
``load_config(..., sections=...)``) refuses a section under ``services:`` that no service reads
(``config error: services.strategy-trnd: unknown service section (known: backtest, collector,
...)``) and validates every known section, so one typo anywhere stops every service. The names
of the sections come from the application (``lighter_stack.registry.config_sections``): this
module knows no service.

Instances: a strategy service's section may list named instances (``services.strategy-trend.
instances: {trend-eth: {markets: [ETH]}}``); ``LS_INSTANCE=trend-eth`` (the top-level key
``instance``) makes the service run that instance: the section with the instance's keys layered
over it and ``strategy: trend-eth`` (attribution name and consumer group). See
:meth:`StackConfig.section` and docs/runbook.md (scaling out).

The stack home (:func:`stack_home`: ``LIGHTER_STACK_HOME``, else the source checkout) is where
``config/`` and ``data/`` are found; relative data paths in the file resolve against it.

Secrets never live in the file: the live API private key comes only from the environment
variable ``LIGHTER_API_PRIVATE_KEY`` and is held as a ``SecretStr``.
"""

from __future__ import annotations

import copy
import os
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError

HOME_ENV = "LIGHTER_STACK_HOME"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def stack_home(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding ``config/`` and ``data/`` (the bundled recordings).

    ``LIGHTER_STACK_HOME`` when set (the image sets ``/app``), else the source checkout this
    module was loaded from. An installed, non-editable package lives in ``site-packages`` where
    there is no ``data/``: such installs must set the variable.
    """
    env = os.environ if environ is None else environ
    return Path(env.get(HOME_ENV) or SOURCE_ROOT).resolve()


# Read once at import: every relative data path (venue-sim's recording, the bundled CSVs, the demo's
# recording) and the default config resolve against it.
REPO_ROOT = stack_home()
DEFAULT_CONFIG = REPO_ROOT / "config" / "paper.yaml"
ENV_PREFIX = "LS_"
LIVE_FLAG_ENV = "LIGHTER_STACK_LIVE"
PRIVATE_KEY_ENV = "LIGHTER_API_PRIVATE_KEY"
PROFILES_ENV = "LIGHTER_STACK_PROFILES"

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the field."""


class VenueConfig(BaseModel):
    """Where the Lighter API is: venue-sim in paper mode, Lighter itself in live mode."""

    model_config = ConfigDict(extra="forbid")
    rest_url: str = "http://127.0.0.1:8090"
    ws_url: str = "ws://127.0.0.1:8090/stream"
    chain_id: int = 304


class ScreeningConfig(BaseModel):
    """The semantic checks every consumer runs on its inputs beside the schema
    (:mod:`shared.screening`; docs/internals.md "Input screening"). An input that fails one goes
    to ``{ns}:dlq`` with the reason, never to an engine.

    Attributes:
        max_jump_pct: a top of book (``Bbo``, ``BookSnapshot``) whose mid is more than this many
            percent from the last good mid of its market, and a ``Trade`` priced that far from it,
            is dead-lettered (default 20 %; the bundled recording's largest step is 0.16 %).
        confirm_s, confirm_count: a new price level is believed (the reference moves there and the
            book is accepted) once out-of-band tops consistent with each other (each within
            ``max_jump_pct`` of the previous one) have come for ``confirm_s`` seconds of event
            time and at least ``confirm_count`` times: a real jump costs that much data, a lone
            bad top never passes. Default 10 s and 3.
        max_spread_pct: a top of book whose spread ``(ask - bid) / mid`` is wider than this many
            percent is dead-lettered (default 25 %); the first top of a market has no reference
            mid and is checked against this and the market's price limits only.
        max_future_s: an event stamped more than this many seconds after the consumer's wall
            clock is dead-lettered (default 300 s): a future ``ts_event`` would move an engine's
            clock and make every later intent stale.
        strategies: the strategies whose intents the executor takes; ``null`` (default) = the
            ``strategy`` of every section under ``services:`` (a section's default name counts when
            the application loaded the config with its sections), plus ``extra_strategies``.
        extra_strategies: more intent senders to accept (e.g. an external bot writing intents).
    """

    model_config = ConfigDict(extra="forbid")
    max_jump_pct: float = Field(default=20.0, gt=0)
    confirm_s: float = Field(default=10.0, ge=0)
    confirm_count: int = Field(default=3, ge=1)
    max_spread_pct: float = Field(default=25.0, gt=0)
    max_future_s: float = Field(default=300.0, gt=0)
    strategies: list[str] | None = None
    extra_strategies: list[str] = Field(default_factory=list)


class StackConfig(BaseModel):
    """Settings shared by every service.

    ``mode`` is ``paper`` (default: venue-sim, no real money) or ``live``. ``namespace``
    prefixes every stream (default: the mode). ``account_index``/``api_key_index`` identify the
    Lighter account and API key the executor signs for.

    ``instance`` (``LS_INSTANCE``): the named instance a strategy service runs as, one of the
    keys of its section's ``instances`` (see :meth:`section`); ``None`` = the service's own
    section as it is. ``lease_ttl_s``: seconds a lease in Redis lives unless its holder renews it
    (every third of it): the lock of a strategy instance (a second replica waits as standby) and
    the executor's per-account lock (:mod:`shared.leases`).
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["paper", "live"] = "paper"
    namespace: str | None = None
    redis_url: str | None = None
    account_index: int = Field(default=1001, ge=0)
    api_key_index: int = Field(default=4, ge=0, le=254)
    venue: VenueConfig = VenueConfig()
    markets: list[str] = Field(default_factory=lambda: ["BTC", "ETH"])
    stream_maxlen: int = Field(default=500_000, ge=1000)
    instance: str | None = None
    lease_ttl_s: float = Field(default=10.0, ge=1.0)
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)
    screening: ScreeningConfig = ScreeningConfig()
    # strategy names of the known sections (defaults included), set by check_sections
    _section_strategies: set[str] | None = PrivateAttr(default=None)

    @property
    def ns(self) -> str:
        """The stream namespace."""
        return self.namespace or self.mode

    def section(self, name: str, model: type[M]) -> M:
        """Validate ``services.<name>`` with ``model``.

        Instances: when ``model`` has a ``strategy`` field (a strategy service), the section may
        hold ``instances: {<instance name>: {<keys of the section>...}}``. Each instance is the
        section with its keys layered over it (:func:`merge_trees`) and ``strategy`` set to the
        instance name (its attribution name and consumer group); every instance is validated
        here. When :attr:`instance` names one of them, that instance is returned, otherwise
        the section itself (without ``instances``).

        Raises:
            ConfigError: naming the first invalid field as ``services.<name>.<field>`` (or
                ``services.<name>.instances.<instance>.<field>``).
        """
        raw: dict[str, Any] = {}
        norm = name.lower().replace("-", "_")
        for key in sorted(self.services):  # 'strategy-trend' and an env-made 'strategy_trend' merge
            if key.lower().replace("-", "_") == norm:
                raw.update(self.services[key] or {})
        instances: dict[str, Any] = {}
        if "strategy" in model.model_fields:
            k = _match_key(raw, "instances")
            got = raw.pop(k) if k is not None else None
            if got is not None and not isinstance(got, dict):
                raise ConfigError(f"config error: services.{name}.instances: must be a mapping of instance name -> "
                                  "keys of the section")
            instances = got or {}
        chosen = _validate(raw, model, f"services.{name}")
        for inst, over in instances.items():
            if over is not None and not isinstance(over, dict):
                raise ConfigError(f"config error: services.{name}.instances.{inst}: must be a mapping of keys "
                                  "of the section")
            tree = merge_trees(copy.deepcopy(raw), dict(over or {}))
            tree[_match_key(tree, "strategy") or "strategy"] = str(inst)
            got_model = _validate(tree, model, f"services.{name}.instances.{inst}")
            if self.instance is not None and section_key(inst) == section_key(self.instance):
                chosen = got_model
        return chosen

    def instance_names(self, name: str) -> list[str]:
        """The instance names listed under ``services.<name>.instances`` (in file order; ``[]``
        when none). No validation: :meth:`section` does it."""
        out: list[str] = []
        norm = section_key(name)
        for key in sorted(self.services):
            if section_key(key) == norm:
                sect = self.services[key] or {}
                k = _match_key(sect, "instances")
                if k is not None and isinstance(sect[k], dict):
                    out += [str(i) for i in sect[k] if str(i) not in out]
        return out

    def strategy_names(self) -> set[str] | None:
        """The strategies allowed to send intents (the executor dead-letters the others):
        ``screening.strategies`` when set; else the ``strategy`` of every section under
        ``services:`` that sets one, the default ``strategy`` of every known section model that
        has the field (known when :func:`check_sections` ran, e.g. ``load_config(...,
        sections=...)``), the named instances of every section (``instances``, :meth:`section`),
        and ``screening.extra_strategies``. ``None`` when nothing names a
        strategy (a config built in code without sections): no check."""
        extra = set(self.screening.extra_strategies)
        if self.screening.strategies is not None:
            return set(self.screening.strategies) | extra
        names = set(self._section_strategies or ())
        names |= {str(sec["strategy"]) for sec in self.services.values()
                  if isinstance(sec, dict) and sec.get("strategy")}
        names |= {i for key in self.services for i in self.instance_names(key)}  # named instances
        if not names and self._section_strategies is None and not extra:
            return None
        return names | extra

    def private_key(self) -> SecretStr | None:
        """The live API private key from ``LIGHTER_API_PRIVATE_KEY``, if set."""
        key = os.environ.get(PRIVATE_KEY_ENV)
        return SecretStr(key) if key else None

    def require_live_allowed(self) -> None:
        """Refuse live mode unless explicitly enabled.

        Live trading needs ``mode: live``, ``LIGHTER_STACK_LIVE=yes`` and
        ``LIGHTER_API_PRIVATE_KEY`` in the environment.

        Raises:
            ConfigError: when live mode is configured without the flag or the key.
        """
        if self.mode != "live":
            return
        if os.environ.get(LIVE_FLAG_ENV, "").lower() not in {"yes", "1", "true"}:
            raise ConfigError(f"mode: live needs the explicit opt-in {LIVE_FLAG_ENV}=yes in the environment")
        if not os.environ.get(PRIVATE_KEY_ENV):
            raise ConfigError(f"mode: live needs {PRIVATE_KEY_ENV} in the environment")


def _validate(raw: dict[str, Any], model: type[M], prefix: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, prefix, model)) from None


def merge_market_values(given: Any, defaults: Mapping[str, float]) -> Any:
    """A per-market mapping of one number (``{"BTC": 0.001}``, base units or USD as the field
    says) given in the config, merged over ``defaults``; market keys upper-cased (environment
    overrides arrive lower-cased). ``None`` gives a copy of ``defaults``; anything but a dict is
    returned unchanged for the pydantic validator to reject. For a ``mode="before"`` validator."""
    if given is None:
        return dict(defaults)
    if not isinstance(given, dict):
        return given
    return {**defaults, **{str(k).upper(): x for k, x in given.items()}}


def require_positive(per_market: Iterable[tuple[str, Mapping[str, float]]]) -> None:
    """Check that every value of each named per-market mapping is > 0.

    Raises:
        ValueError: ``"<name>: must be > 0 for <markets>"`` for the first mapping with a value
            that is not (pydantic turns it into a validation error naming the section).
    """
    for name, d in per_market:
        bad = [k for k, x in d.items() if not x > 0]
        if bad:
            raise ValueError(f"{name}: must be > 0 for {', '.join(bad)}")


def section_markets(section: str, given: Sequence[str] | None, stack_markets: Sequence[str],
                    per_market: Iterable[tuple[str, Mapping[str, Any]]], verb: str = "trade") -> list[str]:
    """The markets of service ``section``: ``given`` (its ``markets``) or, when ``None``, the
    stack's; each must have an entry in every named per-market mapping of ``per_market``.

    Raises:
        ConfigError: no market (``services.<section>.markets: no market to <verb>``), or a
            market missing from a mapping (``services.<section>.<name>: nothing set for ...``).
    """
    markets = list(given) if given is not None else list(stack_markets)
    if not markets:
        raise ConfigError(f"config error: services.{section}.markets: no market to {verb}")
    for name, d in per_market:
        missing = [m for m in markets if m not in d]
        if missing:
            raise ConfigError(f"config error: services.{section}.{name}: nothing set for {', '.join(missing)}")
    return markets


def section_key(name: str) -> str:
    """The normalised form of a section or key name: lower case, ``-`` as ``_`` (so
    ``strategy-trend``, ``STRATEGY_TREND`` and an environment-made ``strategy_trend`` match)."""
    return str(name).lower().replace("-", "_")


def check_sections(cfg: StackConfig, sections: Mapping[str, type[BaseModel]]) -> None:
    """Refuse unknown sections under ``services:`` and validate every known one.

    Args:
        cfg: the loaded stack config.
        sections: every section name the application knows (``strategy-trend``, ``backtest``,
            ...) -> its pydantic model (which forbids unknown keys).

    Records the ``strategy`` of every section whose model has that field (its default when the
    section is absent) for :meth:`StackConfig.strategy_names`.

    Raises:
        ConfigError: ``config error: services.<name>: unknown service section (known: ...)``
            for a section no model reads, or the first invalid field of a known section
            (``services.<name>.<key>: unknown key (known: ...)`` for a key the model lacks).
    """
    known = {section_key(n): n for n in sections}
    names = ", ".join(sorted(sections))
    for key in cfg.services:
        if section_key(key) not in known:
            raise ConfigError(f"config error: services.{key}: unknown service section (known: {names})")
    names: set[str] = set()
    for name, model in sections.items():
        sec = cfg.model_copy(update={"instance": None}).section(name, model)  # validates every instance too
        if "strategy" in type(sec).model_fields and isinstance(getattr(sec, "strategy", None), str):
            names.add(sec.strategy)  # type: ignore[attr-defined]
            names.update(cfg.instance_names(name))
    cfg._section_strategies = names


def _unwrap(tp: Any) -> Any:
    """The model/dict/list part of an optional annotation (``X | None`` -> ``X``)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def known_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str] | None:
    """The keys the model accepts at ``loc`` (a pydantic error location without its last
    part): the fields of the (nested) model there, or ``None`` when it is not a model."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin in (list, tuple):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(tp.model_fields)
    return None


_KEYED = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w-]+)*): (.+)$", re.S)


def describe_errors(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """``config error: <where>: <what>; ...`` for every error of ``exc`` (``<where>`` =
    ``prefix.<error location>``); an unknown key is reported as ``<where>: unknown key (known:
    <the keys of model at that place>)``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            keys = known_keys(model, err["loc"][:-1]) if model is not None else None
            msg = f"unknown key (known: {', '.join(keys)})" if keys else "unknown key"
        elif err["type"] == "value_error":
            # a validator's "<key path>: <what>" names the field itself: join it to the location
            m = _KEYED.match(str((err.get("ctx") or {}).get("error", "")))
            if m:
                where, msg = f"{where}.{m.group(1)}" if where else m.group(1), m.group(2)
        parts.append(f"{where}: {msg}")
    return "config error: " + "; ".join(parts)


def _match_key(node: dict[str, Any], key: str) -> str | None:
    """The existing key of ``node`` equal to ``key`` case-insensitively, ``_`` and ``-`` alike."""
    norm = str(key).lower().replace("-", "_")
    return next((k for k in node if str(k).lower().replace("-", "_") == norm), None)


def merge_trees(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Layer the raw config tree ``over`` onto ``base`` (in place, returned): mappings merge
    recursively, keys matched case-insensitively with ``_`` and ``-`` alike (``SOL``/``sol``,
    ``strategy-grid``/``strategy_grid``); any other value (scalar, list, null) replaces."""
    for key, value in over.items():
        k = _match_key(base, key)
        if k is None:
            base[key] = value
        elif isinstance(value, dict) and isinstance(base[k], dict):
            merge_trees(base[k], value)
        else:
            base[k] = value
    return base


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for i, key in enumerate(path):
        # match existing keys case-insensitively, treating '_' and '-' alike
        norm = key.lower()
        match = next((k for k in node if k.lower().replace("-", "_") == norm.replace("-", "_")), None)
        k = match if match is not None else norm
        if i == len(path) - 1:
            node[k] = value
        else:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]


def apply_env(tree: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Apply ``LS_A__B=value`` overrides and ``REDIS_URL`` to a raw config tree (in place)."""
    env = os.environ if environ is None else environ
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].split("__")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        _set_path(tree, path, parsed)
    if env.get("REDIS_URL"):
        tree["redis_url"] = env["REDIS_URL"]
    return tree


def _read_tree(p: Path) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"config error: cannot read {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config error: {p} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config error: {p} must hold a mapping at the top level")
    return tree


def load_config(path: str | Path | Sequence[str | Path | None] | None = None,
                environ: dict[str, str] | None = None,
                sections: Mapping[str, type[BaseModel]] | None = None) -> StackConfig:
    """Load and validate the configuration.

    Args:
        path: YAML file, or several layered in order (later files win key by key, see
            :func:`merge_trees`); default (also for a ``None`` in the list)
            ``LIGHTER_STACK_CONFIG`` or ``config/paper.yaml``.
            Files named in ``LIGHTER_STACK_PROFILES`` (``os.pathsep``-separated) are layered
            after them.
        environ: environment to read overrides from (default ``os.environ``).
        sections: every known section under ``services:`` -> its model; when given, the whole
            config is checked with :func:`check_sections` (unknown section or key stops here).

    Raises:
        ConfigError: unreadable file, invalid YAML, an unknown section or key, or an invalid
            field (named in the message).
    """
    env = os.environ if environ is None else environ
    default = Path(env.get("LIGHTER_STACK_CONFIG") or DEFAULT_CONFIG)
    if path is None or isinstance(path, str | Path):
        paths = [Path(path) if path else default]
    else:
        paths = [Path(x) if x else default for x in path] or [default]
    paths += [Path(x) for x in env.get(PROFILES_ENV, "").split(os.pathsep) if x.strip()]
    tree: dict[str, Any] = {}
    for p in paths:
        merge_trees(tree, _read_tree(p))
    apply_env(tree, dict(env))
    try:
        cfg = StackConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, "", StackConfig)) from None
    if sections is not None:
        check_sections(cfg, sections)
    return cfg
