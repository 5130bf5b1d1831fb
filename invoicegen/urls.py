"""Database URLs: parse them, refuse query parameters that are not plain connection settings,
mask passwords by the URL's structure, and describe what a URL points at.

One place for all of it: the CLI, the settings, the error mapping in :mod:`invoicegen.db` and
the pytest plugin call these functions. A password is hidden by where it sits (the URL's
userinfo, a ``password``-like query key, a ``password=`` pair in a driver's message), never by
searching a message for the password's text, which garbles the message when the password is
short ("c***nnecti***n") and shows the rest of one with an unencoded ``@`` in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote_plus, unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from invoicegen.errors import UsageError

OPTION = "--database-url"  # the option a URL error names (the pytest plugin names its own)

# backend name -> (driver invoicegen uses, importable module, extra that installs it)
DRIVERS = {
    "sqlite": ("pysqlite", "sqlite3", None),
    "postgresql": ("psycopg", "psycopg", "postgres"),
    "mysql": ("pymysql", "pymysql", "mysql"),
    "mariadb": ("pymysql", "pymysql", "mysql"),
}
_SCHEME_ALIASES = {"postgres": "postgresql"}

_MYSQL_QUERY = frozenset(
    {
        # PyMySQL's connection settings, as SQLAlchemy's mysql dialect passes them on
        "charset", "connect_timeout", "read_timeout", "write_timeout", "unix_socket",
        "program_name", "password", "passwd",
        "ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_check_hostname",
    }
)  # fmt: skip
#: The query parameters a URL may carry, per backend: connection settings that run no SQL,
#: read no option files and change no server setting. Everything else is refused (exit 2):
#: PyMySQL's ``init_command``, ``sql_mode``, ``read_default_file``, ``local_infile``,
#: ``client_flag``, libpq's ``options`` and ``service``, SQLAlchemy's ``plugin`` ...
ALLOWED_QUERY: dict[str, frozenset[str]] = {
    "postgresql": frozenset(
        {
            # libpq's connection parameters (psycopg passes them on)
            "application_name", "fallback_application_name", "client_encoding",
            "connect_timeout", "tcp_user_timeout",
            "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
            "sslmode", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword",
            "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
            "ssl_min_protocol_version", "ssl_max_protocol_version",
            "gssencmode", "krbsrvname", "gsslib", "gssdelegation",
            "channel_binding", "require_auth", "requirepeer",
            "target_session_attrs", "load_balance_hosts", "password", "passfile",
        }
    ),
    "mysql": _MYSQL_QUERY,
    "mariadb": _MYSQL_QUERY,
    # pysqlite's arguments are invoicegen's to set; SQLite's URI mode would hide the file
    "sqlite": frozenset(),
}  # fmt: skip

MASK = "***"
# Query keys (and key=value pairs in a message) whose value is a secret.
_SECRET_KEY = re.compile(r"pass(?:word|wd)|secret|token", re.IGNORECASE)
# scheme://user:PASSWORD@host — to the last @ before the host, so an unencoded @ stays hidden
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]*):\S*@(?=[^\s@/?]*(?:[/?\s]|$))")
# password=VALUE (libpq conninfo, a URL's query) and 'password': 'VALUE' (a repr of arguments)
_PAIR = re.compile(
    r"""(?P<key>\b\w*pass(?:word|wd)\w*)(?P<sep>\s*=\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'")}]+)""",
    re.IGNORECASE,
)
_REPR_PAIR = re.compile(
    r"""(?P<key>(?P<q>['"])\w*pass(?:word|wd)\w*(?P=q))(?P<sep>\s*:\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""",
    re.IGNORECASE,
)


def _split(text: str) -> URL:
    """The URL with invoicegen's driver; raises UsageError when it cannot be read at all.

    An unencoded ``@`` in a password is read as part of it: the userinfo ends at the last
    ``@`` before the host (SQLAlchemy's parser ends it at the first).
    """
    text = text.strip()
    scheme = text.split("://", 1)[0] if "://" in text else ""
    backend, _, driver = scheme.partition("+")
    backend = _SCHEME_ALIASES.get(backend, backend)
    if not re.fullmatch(r"[a-z][a-z0-9]*(\+[a-z0-9_]+)?", scheme) or backend not in DRIVERS:
        shown = scheme or text.split(":", 1)[0][:20]
        raise UsageError(
            f"unsupported or malformed URL (scheme {shown!r}); use "
            "sqlite:///FILE, postgresql://USER@HOST/DB or mysql://USER@HOST/DB",
            option=OPTION,
        )
    try:
        url = sa.make_url(f"{backend}+{driver or DRIVERS[backend][0]}://{text.split('://', 1)[1]}")
    except (ArgumentError, ValueError):
        raise UsageError("the URL could not be parsed", option=OPTION) from None
    if url.host and "@" in url.host:
        rest, _, host = url.host.rpartition("@")
        if url.password is not None:
            url = url.set(password=f"{url.password}@{unquote(rest)}", host=host)
        else:
            url = url.set(username=f"{url.username or ''}@{unquote(rest)}", host=host)
    return url


def parse(text: str) -> URL:
    """Validate a database URL without connecting; pick invoicegen's driver for it."""
    url = _split(text)
    try:
        url.get_dialect()
    except NoSuchModuleError:
        driver = text.split("://", 1)[0].partition("+")[2]
        raise UsageError(
            f"unknown driver {driver!r} for {url.get_backend_name()}", option=OPTION
        ) from None
    backend = url.get_backend_name()
    if backend != "sqlite" and not url.host:
        raise UsageError("the URL names no host", option=OPTION)
    if backend != "sqlite" and not url.database:
        raise UsageError("the URL names no database", option=OPTION)
    check_query(url)
    return url


def check_query(url: URL) -> None:
    """Refuse query parameters outside the backend's allow-list, naming them (never their
    values) and the allowed ones."""
    backend = url.get_backend_name()
    allowed = ALLOWED_QUERY.get(backend, frozenset())
    refused = [key for key in url.query if key not in allowed]
    if refused:
        names = ", ".join(repr(key) for key in refused)
        raise UsageError(
            f"query parameter {names} {'is' if len(refused) == 1 else 'are'} "
            f"not allowed for {backend} (allowed: {', '.join(sorted(allowed)) or 'none'})",
            option=OPTION,
        )


def _is_secret(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def has_password(url: URL | str) -> bool:
    """Whether the URL carries a password, in its userinfo or its query."""
    if isinstance(url, str):
        text = url
        try:
            url = _split(text)
        except UsageError:
            return _USERINFO.search(text) is not None or _PAIR.search(text) is not None
    return bool(url.password) or any(_is_secret(key) for key in url.query)


def mask(url: URL | str) -> str:
    """The URL as it may be shown: the password, and every password-like query value, ***."""
    if isinstance(url, str):
        try:
            url = _split(url)
        except UsageError:
            return "<unparsable URL>"
    backend = url.get_backend_name()
    if backend in DRIVERS and url.get_driver_name() == DRIVERS[backend][0]:
        url = url.set(drivername=backend)  # show the URL as people write it
    shown = url.set(query={}).render_as_string(hide_password=True)
    pairs = [
        f"{quote_plus(key)}={MASK if _is_secret(key) else quote_plus(value)}"
        for key, values in url.query.items()
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return shown + ("?" + "&".join(pairs) if pairs else "")


def scrub(message: str, url: URL | str | None = None) -> str:
    """A message safe to show, in one line: ``url``'s rendered forms replaced by its mask, then
    any URL userinfo password and any ``password=...`` pair hidden by their structure."""
    if url is not None:
        forms: set[str] = set()
        if isinstance(url, str):
            if "://" in url:
                forms.add(url.strip())
            try:
                url = _split(url)
            except UsageError:
                url = None
        if url is not None:
            shown = mask(url)
            for candidate in (url, url.set(drivername=url.get_backend_name())):
                forms.add(candidate.render_as_string(hide_password=False))
            for form in sorted(forms, key=len, reverse=True):
                message = message.replace(form, shown)
    message = _USERINFO.sub(rf"\g<head>:{MASK}@", message)
    message = _PAIR.sub(_masked_pair, message)
    message = _REPR_PAIR.sub(_masked_pair, message)
    return _one_line(message)


def _one_line(message: str) -> str:
    """A message's lines as one line. A line that ends without punctuation before one that
    starts a sentence gets its full stop (psycopg: "Connection refused\n\tIs the server
    running ...?"); spaces and tabs run together."""
    joined = ""
    for line in filter(None, (" ".join(line.split()) for line in message.splitlines())):
        if joined and joined[-1] not in ".:;,!?" and line[0].isupper():
            joined += "."
        joined = f"{joined} {line}" if joined else line
    return joined


def _masked_pair(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['key']}{match['sep']}{quote}{MASK}{quote}"


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "")


def refuse_in_memory(url: URL) -> None:
    """Refuse SQLite's in-memory database (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``)
    where the database must outlive the process: what a command writes there is gone when it
    exits, after it reported success. The library and the pytest plugin keep it: there the
    database lives as long as the caller's engine."""
    if url.get_backend_name() == "sqlite" and sqlite_path(url) is None:
        raise UsageError(
            "an in-memory SQLite database is gone when the command exits, with everything "
            "written to it; give a file instead, e.g. sqlite:///invoicegen.db",
            option=OPTION,
        )


def describe_target(url: URL) -> str:
    """What a destructive command is about to act on: dialect, host, database; no password."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        return f"sqlite file {path.resolve() if path else ':memory:'}"
    where = f"{url.host}:{url.port}" if url.port else url.host
    return f"{url.get_backend_name()} database {url.database} on {where} ({mask(url)})"
