"""Configuration, resolved once per command: option > environment > file profile > file > default.

Every value remembers where it came from, so ``--verbose`` can say why it is what it is.
Files: ``[tool.invoicegen]`` in ``pyproject.toml``, or the top level of ``invoicegen.toml``, in
the current folder or the nearest folder above it that holds either (the walk stops at a folder
with ``.git``, as pytest's and ruff's do); named profiles live in their ``profiles.NAME`` tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import random
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from invoicegen.errors import UsageError

DEFAULT_DATABASE_URL = "sqlite:///invoicegen.db"
ENV_PREFIX = "INVOICEGEN_"
MAX_USERS = 100_000_000
MAX_CHILDREN = 1_000
MAX_BATCH_SIZE = 1_000_000
MAX_MIX_PARTS = 100
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True, order=True)
class CountRange:
    """``low`` to ``high`` children, both included: exactly ``low`` when ``low == high``."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str, *, name: str = "count") -> CountRange:
        """Read ``N`` or ``MIN-MAX``; errors name the option."""
        raw = text.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", raw)
        if not match:
            raise UsageError(f"expected N or MIN-MAX with whole numbers, got {raw!r}", option=name)
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise UsageError(f"the range {raw!r} runs backwards; write {high}-{low}", option=name)
        if high > MAX_CHILDREN:
            raise UsageError(f"at most {MAX_CHILDREN} per parent, got {high}", option=name)
        return cls(low, high)

    def __contains__(self, count: object) -> bool:
        return isinstance(count, int) and self.low <= count <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, eq=False)
class CountMix:
    """How many children a parent gets: one range (``1-3``), or a weighted mix of ranges
    (``1-3:80,4-20:15,21-100:5``: a parent's count falls in 1-3 with weight 80 of 100, ...).

    Weights are relative shares: ``1-3:8,4-9:2`` equals ``1-3:80,4-9:20`` and draws the same
    counts; one part's weight does not matter (``1-3:5`` is ``1-3``).
    """

    parts: tuple[tuple[CountRange, int], ...]

    def __post_init__(self) -> None:
        if not self.parts or any(weight <= 0 for _, weight in self.parts):
            raise ValueError(f"a count mix needs parts with weights above 0, got {self.parts!r}")
        if len(self.parts) == 1:
            object.__setattr__(self, "parts", ((self.parts[0][0], 1),))

    @functools.cached_property
    def _shares(self) -> tuple[tuple[CountRange, int], ...]:
        """The parts with their weights in lowest terms: what equality and drawing use."""
        divisor = math.gcd(*(weight for _, weight in self.parts))
        return tuple((part, weight // divisor) for part, weight in self.parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CountMix) and self._shares == other._shares

    def __hash__(self) -> int:
        return hash(self._shares)

    @classmethod
    def range(cls, low: int, high: int | None = None) -> CountMix:
        """The plain range ``low``-``high`` (``low`` alone: exactly that many)."""
        return cls(((CountRange(low, low if high is None else high), 1),))

    @classmethod
    def parse(cls, text: str | int | list[int], *, name: str = "count") -> CountMix:
        """Read ``N``, ``MIN-MAX``, a mix ``RANGE:WEIGHT,RANGE:WEIGHT,...`` of ranges that do
        not overlap (or, from a file, ``[MIN, MAX]``); errors name the option."""
        if isinstance(text, list) and len(text) == 2:
            text = f"{text[0]}-{text[1]}"
        raw = str(text).strip()
        pieces = [piece.strip() for piece in raw.split(",")]
        if len(pieces) > MAX_MIX_PARTS:
            raise UsageError(
                f"at most {MAX_MIX_PARTS} parts in a mix, got {len(pieces)}", option=name
            )
        if len(pieces) == 1 and ":" not in raw:
            return cls(((CountRange.parse(raw, name=name), 1),))
        parts: list[tuple[CountRange, int]] = []
        for piece in pieces:
            counts, colon, weight = piece.rpartition(":")
            if not piece or not colon or not counts.strip():
                raise UsageError(
                    f"expected a mix of RANGE:WEIGHT parts separated by commas "
                    f"(e.g. 1-3:80,4-20:20), got {raw!r}",
                    option=name,
                )
            if not re.fullmatch(r"\s*\d+\s*", weight) or not 0 < int(weight) <= MAX_WEIGHT:
                raise UsageError(
                    f"the weight of {piece!r} must be a whole number from 1 to {MAX_WEIGHT:,}",
                    option=name,
                )
            part = CountRange.parse(counts, name=name)
            for other, _ in parts:
                if part.low <= other.high and other.low <= part.high:
                    raise UsageError(
                        f"the parts {other} and {part} of {raw!r} overlap; "
                        "each count belongs to one part",
                        option=name,
                    )
            parts.append((part, int(weight)))
        return cls(tuple(parts))

    @property
    def low(self) -> int:
        return min(part.low for part, _ in self.parts)

    @property
    def high(self) -> int:
        return max(part.high for part, _ in self.parts)

    @property
    def total(self) -> int:
        return sum(weight for _, weight in self.parts)

    def part_of(self, count: int) -> CountRange | None:
        """The first part ``count`` falls in; None when it is in none."""
        return next((part for part, _ in self.parts if count in part), None)

    def draw(self, rng: random.Random) -> int:
        """One count: a part chosen by weight, then a count in it, uniformly.

        A plain range draws exactly as invoicegen always has (no draw for a part, none for a
        single count), so its datasets stay the same.
        """
        part = self._choose(rng)
        return part.low if part.low == part.high else rng.randint(part.low, part.high)

    def _choose(self, rng: random.Random) -> CountRange:
        if len(self.parts) == 1:
            return self.parts[0][0]
        point = rng.random() * sum(weight for _, weight in self._shares)
        for part, weight in self._shares:
            if point < weight:
                return part
            point -= weight
        return self.parts[-1][0]  # only if rounding left ``point`` at the very end

    def __str__(self) -> str:
        if len(self.parts) == 1:
            return str(self.parts[0][0])
        return ",".join(f"{part}:{weight}" for part, weight in self.parts)


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (0-based) of ``count`` deterministic slices of the users."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, *, name: str = "--shard") -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise UsageError(
                f"expected K/N (slice K of N, counted from 0), got {text!r}", option=name
            )
        index, count = int(match.group(1)), int(match.group(2))
        if not 0 < count <= 10_000:
            raise UsageError(f"N must be between 1 and 10,000, got {count}", option=name)
        if index >= count:
            raise UsageError(
                f"K counts from 0, so K must be below N ({count}); got {index}",
                option=name,
            )
        return cls(index, count)

    def positions(self, users: int) -> range:
        """The user positions of this slice of ``users``: contiguous, disjoint, covering all."""
        return range(self.index * users // self.count, (self.index + 1) * users // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: Where CI runners and Kubernetes say which of N parallel jobs this is: (index variable,
#: total variable or None, the first index's number). Kubernetes gives an Indexed Job's index
#: only: its total comes from ``--shards`` / INVOICEGEN_SHARDS.
RUNNER_SHARD_VARIABLES: tuple[tuple[str, str | None, int], ...] = (
    ("JOB_COMPLETION_INDEX", None, 0),  # Kubernetes Indexed Job
    ("CI_NODE_INDEX", "CI_NODE_TOTAL", 1),  # GitLab CI `parallel:`
    ("CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),  # CircleCI `parallelism:`
    ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),  # Buildkite `parallelism:`
)


@dataclass(frozen=True)
class ShardChoice:
    """The shard a run writes (None: the whole dataset) and where that came from."""

    shard: Shard | None
    source: str


def resolve_shard(
    text: str | None, *, shards: int | None = None, environ: Mapping[str, str] | None = None
) -> ShardChoice:
    """``--shard K/N``, or ``--shard auto``: the index and total the runner set in ``environ``.

    A runner's total of 1 means no sharding. ``shards`` (``--shards``) gives the total where
    the runner sets only an index, and must agree with a runner's own total.
    """
    if text is None:
        return ShardChoice(None, "not sharded")
    if text.strip().lower() != "auto":
        return ShardChoice(Shard.parse(text), f"--shard {text}")
    environ = os.environ if environ is None else environ
    for index_name, total_name, first in RUNNER_SHARD_VARIABLES:
        raw_index = environ.get(index_name, "").strip()
        raw_total = environ.get(total_name, "").strip() if total_name else ""
        if not raw_index and not raw_total:
            continue
        if not raw_index:
            raise UsageError(f"{total_name} is set but {index_name} is not", option="--shard auto")
        index = parse_int(raw_index, name=index_name, low=first, high=first + 9_999)
        if raw_total:
            total = parse_int(raw_total, name=str(total_name), low=1, high=10_000)
            if shards is not None and shards != total:
                raise UsageError(f"--shards {shards} disagrees with {total_name}={total}")
        elif shards is not None:
            total = shards
        else:
            needs = (
                f"{total_name} or --shards N" if total_name else "--shards N (or INVOICEGEN_SHARDS)"
            )
            raise UsageError(
                f"{index_name}={raw_index} gives no total; set {needs}", option="--shard auto"
            )
        shard = Shard.parse(f"{index - first}/{total}", name=f"--shard auto ({index_name})")
        totals = f", {total_name}={total}" if raw_total else f", {total} shards"
        return ShardChoice(shard if total > 1 else None, f"{index_name}={raw_index}{totals}")
    names = ", ".join(name for name, _, _ in RUNNER_SHARD_VARIABLES)
    raise UsageError(
        f"no runner index in the environment (looked for {names})", option="--shard auto"
    )


def parse_int(text: str | int, *, name: str, low: int, high: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"expected a whole number, got {str(text)!r}", option=name) from None
    if not low <= value <= high:
        raise UsageError(f"must be between {low:,} and {high:,}, got {value:,}", option=name)
    return value


#: The as-of dates a dataset can be made for: contract histories reach years back from it.
EARLIEST_AS_OF = dt.date(1900, 1, 1)
LATEST_AS_OF = dt.date(9000, 12, 31)


def check_as_of(day: dt.date, *, name: str = "--as-of") -> dt.date:
    """``day`` if a dataset can be made as of it, else a :class:`UsageError` naming ``name``."""
    if not EARLIEST_AS_OF <= day <= LATEST_AS_OF:
        raise UsageError(
            f"must be between {EARLIEST_AS_OF} and {LATEST_AS_OF}, got {day.isoformat()}",
            option=name,
        )
    return day


def parse_date(text: str | dt.date, *, name: str = "--as-of") -> dt.date:
    if isinstance(text, dt.datetime):  # a TOML date-time: which day is meant is not clear
        raise UsageError(
            f"expected a date as YYYY-MM-DD, got a date and time {text.isoformat()}",
            option=name,
        )
    if isinstance(text, dt.date):
        return check_as_of(text, name=name)
    try:
        day = dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise UsageError(f"expected a date as YYYY-MM-DD, got {str(text)!r}", option=name) from None
    return check_as_of(day, name=name)


def parse_locale(text: str, *, name: str = "--locale") -> str:
    from faker.config import AVAILABLE_LOCALES

    locale = str(text).strip().replace("-", "_")
    if locale not in AVAILABLE_LOCALES:
        raise UsageError(
            f"Faker has no locale {text!r} (try en_US, de_DE, fr_FR, ja_JP)", option=name
        )
    return str(locale)


def parse_on_off(text: str | bool, *, name: str) -> bool:
    """``on`` or ``off`` (a file may say true or false)."""
    raw = str(text).strip().lower()
    if raw in ("on", "true"):
        return True
    if raw in ("off", "false"):
        return False
    raise UsageError(f"expected on or off, got {str(text)!r}", option=name)


def parse_seed(text: str | int, *, name: str = "--seed") -> int:
    return parse_int(text, name=name, low=0, high=2**63 - 1)


@dataclass(frozen=True)
class Option:
    """One setting's definition: how to read it from text, its default, and how the help
    text shows that default (``shown``; the default itself when not given)."""

    parse: Callable[[Any], Any]
    default: Any = None
    shown: str | None = None

    @property
    def default_text(self) -> str:
        return self.shown if self.shown is not None else str(self.default)


#: Names that are the server's own: PostgreSQL's system schemas, MariaDB/MySQL's system databases.
RESERVED_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


def parse_schema(text: str, *, name: str = "--schema") -> str:
    """A schema name that reads the same wherever it is typed: lowercase letters, digits and
    ``_``, not starting with a digit, at most 63 characters (PostgreSQL's limit), and not a
    system schema. Mixed case is refused: PostgreSQL folds unquoted names to lowercase and
    MariaDB's case rules depend on the server, so such a name would differ by where it is typed.
    """
    raw = str(text).strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", raw):
        raise UsageError(
            "a schema name is 1 to 63 lowercase letters, digits and _, not starting with a "
            f"digit (e.g. invoicegen), got {raw!r}",
            option=name,
        )
    if raw in RESERVED_SCHEMAS or raw.startswith("pg_"):
        raise UsageError(f"{raw!r} is the server's own schema; choose another name", option=name)
    return raw


def _count(name: str) -> Callable[[Any], CountMix]:
    return lambda text: CountMix.parse(text, name=name)


def _int(name: str, low: int, high: int) -> Callable[[Any], int]:
    return lambda text: parse_int(text, name=name, low=low, high=high)


#: Every setting and its default: the one place the CLI's help, the seeding engine's plan
#: and the factories read them from.
OPTIONS: dict[str, Option] = {
    "database_url": Option(str, DEFAULT_DATABASE_URL),
    "schema": Option(parse_schema, None, "the connection's own"),
    "users": Option(_int("--users", 1, MAX_USERS), 50),
    "clients_per_user": Option(_count("--clients-per-user"), CountMix.range(1, 3)),
    "contracts_per_client": Option(_count("--contracts-per-client"), CountMix.range(1, 3)),
    "invoices_per_contract": Option(_count("--invoices-per-contract"), CountMix.range(1, 5)),
    "seed": Option(parse_seed, None, "random, printed"),
    "as_of": Option(parse_date, None, "today"),
    "since": Option(lambda text: parse_date(text, name="--since"), None, "3 years before as-of"),
    "locale": Option(parse_locale, "en_US"),
    "batch_size": Option(_int("--batch-size", 1, MAX_BATCH_SIZE), 1000),
    "workers": Option(_int("--workers", 1, 256), None, "1 under 2,500 users, else CPU cores"),
    "lock_timeout": Option(_int("--lock-timeout", 0, 86_400), 60),
    "shard": Option(str, None),
    "shards": Option(_int("--shards", 1, 10_000), None),
    "synchronous_commit": Option(
        lambda text: parse_on_off(text, name="--synchronous-commit"), True, "on"
    ),
}


def default(key: str) -> Any:
    """The default of setting ``key``."""
    return OPTIONS[key].default


def env_var(key: str) -> str:
    """The environment variable of setting ``key`` (or of ``"profile"``): INVOICEGEN_<KEY>."""
    return ENV_PREFIX + key.upper()


@dataclass(frozen=True)
class Settings:
    """Resolved values and, for each, where it came from; typed attributes per setting (a
    setting the command did not resolve raises AttributeError)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    warnings: tuple[str, ...] = field(default=())

    def given(self, name: str) -> Any:
        """The value when it was set (option, environment, file), None when left unset."""
        return None if self.sources[name] == "default" else self._get(name)

    def _get(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def database_url(self) -> str:
        return cast("str", self._get("database_url"))

    @property
    def schema(self) -> str | None:
        return cast("str | None", self._get("schema"))

    @property
    def users(self) -> int:
        return cast("int", self._get("users"))

    @property
    def clients_per_user(self) -> CountMix:
        return cast("CountMix", self._get("clients_per_user"))

    @property
    def contracts_per_client(self) -> CountMix:
        return cast("CountMix", self._get("contracts_per_client"))

    @property
    def invoices_per_contract(self) -> CountMix:
        return cast("CountMix", self._get("invoices_per_contract"))

    @property
    def seed(self) -> int | None:
        return cast("int | None", self._get("seed"))

    @property
    def as_of(self) -> dt.date | None:
        return cast("dt.date | None", self._get("as_of"))

    @property
    def since(self) -> dt.date | None:
        return cast("dt.date | None", self._get("since"))

    @property
    def locale(self) -> str:
        return cast("str", self._get("locale"))

    @property
    def batch_size(self) -> int:
        return cast("int", self._get("batch_size"))

    @property
    def workers(self) -> int | None:
        return cast("int | None", self._get("workers"))

    @property
    def lock_timeout(self) -> int:
        return cast("int", self._get("lock_timeout"))

    @property
    def synchronous_commit(self) -> bool:
        return cast("bool", self._get("synchronous_commit"))

    @property
    def shard(self) -> str | None:
        return cast("str | None", self._get("shard"))

    @property
    def shards(self) -> int | None:
        return cast("int | None", self._get("shards"))


SETTINGS_FILES = ("pyproject.toml", "invoicegen.toml")


def project_folder(cwd: Path) -> Path | None:
    """The folder whose settings files apply in ``cwd``: ``cwd`` or the nearest folder above
    it holding pyproject.toml or invoicegen.toml; None when a ``.git`` folder (a repository's
    root) or the file system's root comes first."""
    for folder in (cwd, *cwd.parents):
        if any(os.path.lexists(folder / name) for name in SETTINGS_FILES):
            return folder
        if (folder / ".git").exists():
            return None
    return None


def _read_file_config(cwd: Path) -> tuple[dict[str, Any], str | None, list[str]]:
    """The settings table, its label (the file's path from ``cwd``), and a warning when two
    files compete.

    A settings file that cannot be used (not a file, not UTF-8, not TOML, nested beyond
    reason, a table that is not one) is a :class:`UsageError` naming the file and the key.
    """
    cwd = cwd.absolute()
    folder = project_folder(cwd)
    if folder is None:
        return {}, None, []
    pyproject_name = os.path.relpath(folder / "pyproject.toml", cwd)
    standalone_name = os.path.relpath(folder / "invoicegen.toml", cwd)
    pyproject = _load_toml(folder / "pyproject.toml", pyproject_name)
    section = None
    if pyproject is not None:
        tool = _table(pyproject.get("tool", {}), pyproject_name, "[tool]")
        section = tool.get("invoicegen")
        if section is not None:
            section = _table(section, pyproject_name, "[tool.invoicegen]")
    standalone = _load_toml(folder / "invoicegen.toml", standalone_name)
    if standalone is not None:
        ignored = [f"{pyproject_name} [tool.invoicegen] is ignored: {standalone_name} wins"]
        _check_profiles(standalone, standalone_name)
        return standalone, standalone_name, ignored if section is not None else []
    if section is not None:
        label = f"{pyproject_name} [tool.invoicegen]"
        _check_profiles(section, label)
        return section, label, []
    return {}, None, []


def _load_toml(path: Path, name: str) -> dict[str, Any] | None:
    """The TOML document at ``path`` (shown as ``name``), or None when there is no such file."""
    if not path.exists():
        return None
    if not path.is_file():
        raise UsageError(f"{name}: not a file; invoicegen reads its settings from it")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{name}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} on line {line})"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{name}: not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{name}: not readable: values nested too deeply") from None


def _table(value: Any, file: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{file}: {key} must be a table, got {_toml_type(value)}")
    return value


def _check_profiles(config: Mapping[str, Any], label: str) -> None:
    profiles = _table(config.get("profiles", {}), label, "profiles")
    for name, table in profiles.items():
        _table(table, label, f"profiles.{name}")


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dt.datetime, "a date-time"),
    (dt.date, "a date"),
    (dt.time, "a time"),
)


def _toml_type(value: Any) -> str:
    return next((kind for cls, kind in _TOML_TYPES if isinstance(value, cls)), type(value).__name__)


def profile_names(cwd: Path | None = None) -> list[str]:
    """The profiles the settings file for ``cwd`` defines (none when it cannot be read)."""
    try:
        config, _, _ = _read_file_config(Path.cwd() if cwd is None else cwd)
    except UsageError:
        return []
    profiles = config.get("profiles")
    return sorted(profiles) if isinstance(profiles, dict) else []


def resolve(
    options: Mapping[str, Any],
    *,
    keys: Iterable[str] | None = None,
    profile: str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings once: ``keys`` (default: all) from the command line (``options``, None =
    unset), then ``INVOICEGEN_*`` variables, then the profile, then the file, then the default.
    """
    environ = os.environ if environ is None else environ
    file_config, file_label, warnings = _read_file_config(Path.cwd() if cwd is None else cwd)
    profile = profile or environ.get(env_var("profile")) or None
    profile_config = _profile_table(file_config, file_label, profile)
    profile_label = f"profile {profile} in {file_label}"
    for label, table in ((str(file_label), file_config), (profile_label, profile_config)):
        unknown = set(table) - set(OPTIONS) - {"profiles"}
        if unknown:
            raise UsageError(
                f"{label}: unknown setting(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(OPTIONS)})"
            )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in OPTIONS if keys is None else keys:
        option = OPTIONS[key]
        env_name = env_var(key)
        candidates = (
            ("command line", options.get(key)),
            (f"environment {env_name}", environ.get(env_name) or None),
            (profile_label, profile_config.get(key)),
            (str(file_label), file_config.get(key)),
        )
        for source, raw in candidates:
            if raw is not None:
                values[key] = _parse(option, raw, source)
                sources[key] = source
                break
        else:
            values[key] = option.default
            sources[key] = "default"
    if sources.get("database_url") in (profile_label, str(file_label)) and _has_password(
        str(values["database_url"])
    ):
        warnings.append(
            f"the database URL in {file_label} holds a password; "
            "put the URL in INVOICEGEN_DATABASE_URL instead"
        )
    return Settings(values=values, sources=sources, warnings=tuple(warnings))


def _has_password(url: str) -> bool:
    # SQLAlchemy's URL parser: imported only for a URL from a file, since a seed command starts
    # its generating workers before this process loads SQLAlchemy (cli.seed)
    from invoicegen import urls

    return urls.has_password(url)


def _profile_table(
    file_config: Mapping[str, Any], file_label: str | None, profile: str | None
) -> dict[str, Any]:
    if profile is None:
        return {}
    profiles = file_config.get("profiles", {})
    if not isinstance(profiles, dict) or profile not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        if not file_label:
            problem = (
                f"no profile {profile!r}: no [tool.invoicegen] in a pyproject.toml, nor an "
                "invoicegen.toml, here or above"
            )
        else:
            problem = f"no profile {profile!r} in {file_label}; " + (
                f"it has {known}" if known else "it has none"
            )
        raise UsageError(problem, option="--profile")
    table = profiles[profile]
    if not isinstance(table, dict):
        raise UsageError(f"profile {profile} in {file_label}: expected a table of settings")
    return table


def _parse(option: Option, raw: Any, source: str) -> Any:
    """Parse one value; a bad value from a file or the environment says where it came from."""
    try:
        return option.parse(raw)
    except UsageError as exc:
        raise said_where(exc, source) from None


def said_where(exc: UsageError, source: str) -> UsageError:
    """``exc``, about a value that came from ``source`` (a :attr:`Settings.sources` entry),
    saying so when the user may not know it: a value from the environment, a profile or a
    file. One typed on the command line, or the default, needs no origin."""
    if source not in ("command line", "default"):
        exc.source = source
    return exc
