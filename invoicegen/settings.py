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
from collections.abc import Callable, Mapping
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
    def parse(cls, text: str | int, *, name: str = "count") -> CountRange:
        """Read ``N`` or ``MIN-MAX``; a usage error names the option and the problem."""
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


def _read_file_config(cwd: Path) -> tuple[dict[str, Any], str | None]:
    pyproject = cwd / "pyproject.toml"
    standalone = cwd / "invoicegen.toml"
    try:
        if standalone.is_file():
            return tomllib.loads(standalone.read_text("utf-8")), str(standalone.name)
        if pyproject.is_file():
            data = tomllib.loads(pyproject.read_text("utf-8"))
            section = data.get("tool", {}).get("invoicegen")
            if isinstance(section, dict):
                return section, "pyproject.toml [tool.invoicegen]"
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read invoicegen settings in {cwd}: {exc}") from None
    return {}, None


def resolve(
    options: Mapping[str, Any],
    *,
    profile: str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every known setting once. ``options`` holds command-line values (None = unset)."""
    environ = os.environ if environ is None else environ
    file_config, file_label = _read_file_config(Path.cwd() if cwd is None else cwd)
    profile = profile or environ.get(ENV_PREFIX + "PROFILE") or None
    profiles = file_config.get("profiles", {})
    profile_config: dict[str, Any] = {}
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none are defined"
            raise UsageError(f"--profile: no profile {profile!r} ({known})")
        profile_config = profiles[profile]
    for label, table in ((file_label, file_config), (f"profile {profile}", profile_config)):
        unknown = set(table) - set(OPTIONS) - {"profiles"}
        if unknown:
            raise UsageError(f"{label}: unknown setting(s) {', '.join(sorted(unknown))}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    for key, option in OPTIONS.items():
        env_name = ENV_PREFIX + key.upper()
        candidates = (
            ("command line", options.get(key)),
            (f"environment {env_name}", environ.get(env_name) or None),
            (f"profile {profile} in {file_label}", profile_config.get(key)),
            (str(file_label), file_config.get(key)),
        )
        for source, raw in candidates:
            if raw is not None:
                values[key] = option.parse(raw)
                sources[key] = source
                break
        else:
            values[key] = option.default
            sources[key] = "default"
    from_file = not sources["database_url"].startswith(("command line", "environment", "default"))
    if from_file and _has_password(values["database_url"]):
        warnings.append(
            "the database URL in a settings file holds a password; "
            "put it in INVOICEGEN_DATABASE_URL instead"
        )
    return Settings(values=values, sources=sources, warnings=tuple(warnings))


def _has_password(url: str) -> bool:
    return re.match(r"^[\w+.-]+://[^/@]*:[^/@]+@", url) is not None
