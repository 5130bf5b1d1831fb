"""Configuration, resolved once per command: option > environment > file profile > file > default.

Every value remembers where it came from, so ``--verbose`` can say why it is what it is.
Files: ``[tool.invoicegen]`` in ``./pyproject.toml``, or the top level of ``./invoicegen.toml``;
named profiles live in their ``profiles.NAME`` tables.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoicegen.errors import UsageError

DEFAULT_DATABASE_URL = "sqlite:///invoicegen.db"
ENV_PREFIX = "INVOICEGEN_"
MAX_USERS = 100_000_000
MAX_CHILDREN = 1_000
MAX_BATCH_SIZE = 1_000_000


@dataclass(frozen=True, order=True)
class CountRange:
    """How many children a parent gets: exactly ``low`` when ``low == high``."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str | int | list[int], *, name: str = "count") -> CountRange:
        """Read ``N``, ``MIN-MAX`` (or, from a file, ``[MIN, MAX]``); errors name the option."""
        if isinstance(text, list) and len(text) == 2:
            text = f"{text[0]}-{text[1]}"
        raw = str(text).strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", raw)
        if not match:
            raise UsageError(f"{name}: expected N or MIN-MAX with whole numbers, got {raw!r}")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if low > high:
            raise UsageError(f"{name}: the range {raw!r} runs backwards; write {high}-{low}")
        if high > MAX_CHILDREN:
            raise UsageError(f"{name}: at most {MAX_CHILDREN} per parent, got {high}")
        return cls(low, high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (0-based) of ``count`` deterministic slices of the users."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str, *, name: str = "--shard") -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise UsageError(f"{name}: expected K/N (slice K of N, counted from 0), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if not 0 < count <= 10_000:
            raise UsageError(f"{name}: N must be between 1 and 10,000, got {count}")
        if index >= count:
            raise UsageError(
                f"{name}: K counts from 0, so K must be below N ({count}); got {index}"
            )
        return cls(index, count)

    def positions(self, users: int) -> range:
        """The user positions of this slice of ``users``: contiguous, disjoint, covering all."""
        return range(self.index * users // self.count, (self.index + 1) * users // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_int(text: str | int, *, name: str, low: int, high: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{name}: expected a whole number, got {str(text)!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name}: must be between {low:,} and {high:,}, got {value:,}")
    return value


def parse_date(text: str | dt.date, *, name: str = "--as-of") -> dt.date:
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise UsageError(f"{name}: expected a date as YYYY-MM-DD, got {str(text)!r}") from None


def parse_locale(text: str, *, name: str = "--locale") -> str:
    from faker.config import AVAILABLE_LOCALES

    locale = str(text).strip().replace("-", "_")
    if locale not in AVAILABLE_LOCALES:
        raise UsageError(f"{name}: Faker has no locale {text!r} (try en_US, de_DE, fr_FR, ja_JP)")
    return str(locale)


def parse_seed(text: str | int, *, name: str = "--seed") -> int:
    return parse_int(text, name=name, low=0, high=2**63 - 1)


@dataclass(frozen=True)
class Option:
    """One setting's definition: how to read it from text, and its default."""

    parse: Callable[[Any], Any]
    default: Any = None


def _count(name: str) -> Callable[[Any], CountRange]:
    return lambda text: CountRange.parse(text, name=name)


def _int(name: str, low: int, high: int) -> Callable[[Any], int]:
    return lambda text: parse_int(text, name=name, low=low, high=high)


OPTIONS: dict[str, Option] = {
    "database_url": Option(str, DEFAULT_DATABASE_URL),
    "users": Option(_int("--users", 0, MAX_USERS), 50),
    "clients_per_user": Option(_count("--clients-per-user"), CountRange(1, 3)),
    "contracts_per_client": Option(_count("--contracts-per-client"), CountRange(1, 3)),
    "invoices_per_contract": Option(_count("--invoices-per-contract"), CountRange(1, 5)),
    "seed": Option(parse_seed, None),
    "as_of": Option(parse_date, None),
    "since": Option(lambda text: parse_date(text, name="--since"), None),
    "locale": Option(parse_locale, "en_US"),
    "batch_size": Option(_int("--batch-size", 1, MAX_BATCH_SIZE), 1000),
    "workers": Option(_int("--workers", 1, 256), None),
    "lock_timeout": Option(_int("--lock-timeout", 0, 86_400), 60),
}


@dataclass(frozen=True)
class Settings:
    """Resolved values and, for each, where it came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    warnings: tuple[str, ...] = field(default=())

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _read_file_config(cwd: Path) -> tuple[dict[str, Any], str | None, list[str]]:
    """The settings table, its label, and a warning when two files compete."""
    pyproject = cwd / "pyproject.toml"
    standalone = cwd / "invoicegen.toml"
    try:
        section = None
        if pyproject.is_file():
            section = tomllib.loads(pyproject.read_text("utf-8")).get("tool", {}).get("invoicegen")
        if standalone.is_file():
            ignored = ["pyproject.toml [tool.invoicegen] is ignored: invoicegen.toml wins"]
            config = tomllib.loads(standalone.read_text("utf-8"))
            return config, standalone.name, ignored if isinstance(section, dict) else []
        if isinstance(section, dict):
            return section, "pyproject.toml [tool.invoicegen]", []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read invoicegen settings in {cwd}: {exc}") from None
    return {}, None, []


def profile_names(cwd: Path | None = None) -> list[str]:
    """The profiles the settings file in ``cwd`` defines (none when it cannot be read)."""
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
    profile = profile or environ.get(ENV_PREFIX + "PROFILE") or None
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
        env_name = ENV_PREFIX + key.upper()
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
    url_from_file = sources.get("database_url") in (profile_label, str(file_label))
    if url_from_file and _has_password(values["database_url"]):
        warnings.append(
            f"the database URL in {file_label} holds a password; "
            "put the URL in INVOICEGEN_DATABASE_URL instead"
        )
    return Settings(values=values, sources=sources, warnings=tuple(warnings))


def _profile_table(
    file_config: Mapping[str, Any], file_label: str | None, profile: str | None
) -> dict[str, Any]:
    if profile is None:
        return {}
    profiles = file_config.get("profiles", {})
    if not isinstance(profiles, dict) or profile not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        where = f"in {file_label}" if file_label else "(no pyproject.toml or invoicegen.toml here)"
        raise UsageError(f"--profile: no profile {profile!r} {where} (known: {known or 'none'})")
    table = profiles[profile]
    if not isinstance(table, dict):
        raise UsageError(f"profile {profile} in {file_label}: expected a table of settings")
    return table


def _parse(option: Option, raw: Any, source: str) -> Any:
    """Parse one value; a bad value from a file or the environment says where it came from."""
    try:
        return option.parse(raw)
    except UsageError as exc:
        if source == "command line":
            raise
        raise UsageError(f"{source}: {exc}") from None


def _has_password(url: str) -> bool:
    return re.match(r"^[\w+.-]+://[^/@]*:[^/@]+@", url) is not None
