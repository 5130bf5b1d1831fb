"""The `invoicegen` command: parse options, call one library function, render the result.

The only module that imports Typer. Errors are translated in one place, :func:`_handled`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from invoicegen import __version__, interrupts, settings
from invoicegen.errors import (
    CheckFailed,
    Interrupted,
    InvoicegenError,
    RefusedError,
    UsageError,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from invoicegen import console, db, guards, schema, seeding, stats, urls
else:
    # `--help`, `--version` and every completion Tab load none of SQLAlchemy, Alembic,
    # factory-boy, Faker or Rich: the modules that do are imported when a command first uses them.
    class _OnFirstUse:
        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attribute: str) -> Any:
            return getattr(importlib.import_module(self._name), attribute)

    console, db, guards, schema, seeding, stats, urls = (
        _OnFirstUse(f"invoicegen.{name}")
        for name in ("console", "db", "guards", "schema", "seeding", "stats", "urls")
    )


class _OneLineUsageErrors(TyperGroup):
    """Typer's command group, except that a usage error (unknown option, missing value) is one
    line on stderr and exit 2, like every other invoicegen error, instead of a framed panel."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        json = self.json_errors = "--json" in (sys.argv[1:] if args is None else args)
        try:
            # Not standalone: Typer returns exit codes and raises Click's errors to us.
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:  # end of input at a prompt
            _fail(1, "aborted", json=json)
        except Exception as exc:
            _usage_error(exc, json=json)
        sys.exit(code if isinstance(code, int) else 0)

    # A stop (Ctrl-C, SIGTERM: a KeyboardInterrupt, see invoicegen.interrupts) that lands while
    # the options are parsed or a command runs is one line and exit 130; Typer alone would
    # turn it into a silent exit 130.
    json_errors = False

    # Typer shows a flag's type, `<bool>`, where an option's value goes (as if `--help true`
    # were the way to write it); invoicegen's own flags say `metavar=""` (see _flag), and Typer's
    # (--help, --install-completion, --show-completion) are given the same here. An argument's
    # metavar is its name (`DIR`), so its type (`<str>`) is not shown beside it.
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_type(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _without_flag_type(command.get_params(ctx))
            # The list of commands shows each one's first paragraph whole, wrapped (Click
            # would cut it to one line with `...`).
            if command.short_help is None and command.help:
                command.short_help = " ".join(command.help.split("\n\n")[0].split())
        return command

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _stop_reported(json=self.json_errors):
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _stop_reported(json=self.json_errors):
            return super().invoke(ctx)


def _without_flag_type(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument" and param.metavar is not None:
            param.display_type_rich = lambda ctx: None
    return params


@contextlib.contextmanager
def _stop_reported(*, json: bool) -> Iterator[None]:
    """A stop becomes one line on stderr (and the error document with --json) and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        _report(Interrupted.exit_code, "interrupted", json=json)
        raise typer.Exit(Interrupted.exit_code) from None


def _fail(code: int, message: str, *, json: bool) -> NoReturn:
    """The one line on stderr, and with ``--json`` the error document on stdout; then exit."""
    _report(code, message, json=json)
    sys.exit(code)


def _report(code: int, message: str, *, json: bool) -> None:
    console.error(message)
    if json:
        console.emit_json_error(code, message)


def _usage_error(exc: Exception, *, json: bool) -> NoReturn:
    """Print Click's exception (it has ``exit_code`` and ``format_message``) as one line."""
    code, format_message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
    if not isinstance(code, int) or format_message is None:
        raise exc
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `invoicegen` alone
        typer.echo(ctx.get_help())
    else:
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _report(code, " ".join(str(format_message()).split()) + hint, json=json)
    sys.exit(code)


app = typer.Typer(
    name="invoicegen",
    cls=_OneLineUsageErrors,
    help="Seed a database with coherent users → clients → contracts → invoices.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold database URLs with passwords
    # Click's plain help, not Rich's panels: it wraps every cell between words at any width
    # (Rich cuts a long word, an environment variable's name, with `…`), and it has no escape
    # sequences and no line ending in spaces, on a terminal or not.
    rich_markup_mode=None,
)


def _help(key: str, text: str, *, default: bool = True) -> str:
    """An option's help: ``text``, then its environment variable and its default, both from
    settings.OPTIONS (the one table of options)."""
    env = f" [env: {settings.env_var(key)}]"
    shown = f" [default: {settings.OPTIONS[key].default_text}]" if default else ""
    return text + env + shown


def _flag(*names: str, help: str) -> Any:
    """A yes/no option: it takes no value, so its help shows none."""
    return typer.Option(*names, help=help, metavar="")


DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        metavar="URL",
        help=_help("database_url", "SQLAlchemy URL."),
        show_default=False,
    ),
]
Schema = Annotated[
    str | None,
    typer.Option(
        "--schema",
        metavar="NAME",
        help=_help(
            "schema",
            "Keep invoicegen's tables in this schema (created if missing), apart from the "
            "application's own. MariaDB/MySQL: a database of this name on the same server. "
            "Not on SQLite.",
        ),
        show_default=False,
    ),
]
Profile = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        autocompletion=lambda incomplete: [
            name for name in settings.profile_names() if name.startswith(incomplete)
        ],
        help=_help(
            "profile",
            "A profile of [tool.invoicegen.profiles] in pyproject.toml, or of [profiles] in "
            "invoicegen.toml, in this folder or the nearest one above it.",
            default=False,
        ),
    ),
]
Json = Annotated[bool, _flag("--json", help="Print one JSON document on stdout.")]
Quiet = Annotated[
    bool,
    _flag("--quiet", "-q", help="Print nothing but errors, warnings and the --json document."),
]
Verbose = Annotated[
    bool, _flag("--verbose", "-v", help="Show each setting, where it came from, and the file read.")
]
Debug = Annotated[bool, _flag("--debug", help="Show the traceback of an error.")]
LockTimeout = Annotated[
    str | None,
    typer.Option(
        "--lock-timeout",
        metavar="SECONDS",
        help=_help(
            "lock_timeout", "Seconds to wait for another invoicegen run on the same database."
        ),
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"invoicegen {__version__}")
        raise typer.Exit()


def _example(command: str) -> str:
    """A command's help ends with one example of it, on one line (``\\b``: Click does not
    rewrap it), so that it is copied whole."""
    return f"\b\nExample: {command}"


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Print the version."
        ),
    ] = False,
) -> None:
    """Seed a database with coherent users → clients → contracts → invoices."""
    console.configure()


_resolved_url: ContextVar[str | None] = ContextVar("invoicegen_resolved_url", default=None)
#: The engines the running command opened (:func:`_engine`), disposed when it ends.
_engines: ContextVar[list[Engine] | None] = ContextVar("invoicegen_engines", default=None)


@contextlib.contextmanager
def _handled(debug: bool, url: str | None = None, *, json: bool = False) -> Iterator[None]:
    """The one place errors become a line on stderr and an exit code (and, with ``--json``,
    ``{"error": {"code": ..., "message": ...}}`` on stdout). The command's engines are closed
    at its end, not left to the interpreter's teardown (SQLite checkpoints a WAL file when its
    last connection closes)."""
    opened: list[Engine] = []
    token = _engines.set(opened)
    try:
        with interrupts.handled():
            try:
                yield
            finally:
                _engines.reset(token)
                for engine in opened:
                    engine.dispose()
    except InvoicegenError as exc:
        if debug:  # then the same line and exit code: a CI job rerun with --debug still branches
            console.traceback(exc)
        _report(exc.exit_code, str(exc), json=json)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            console.traceback(exc)
        message = str(exc)
        # The URL may have come from the environment or a file, not the command line; any
        # other URL and password=... in the message are hidden by their structure.
        candidates: list[str | None] = [c for c in (url, _resolved_url.get()) if c]
        for candidate in candidates or [None]:
            message = urls.scrub(message, candidate)
        message = f"{type(exc).__name__}: {message}"
        if not debug:
            message += " (rerun with --debug for the traceback)"
        _report(1, message, json=json)
        raise typer.Exit(1) from None


def _resolve(
    options: dict[str, Any], *, profile: str | None, verbose: bool, quiet: bool = False
) -> settings.Settings:
    """Set up the output streams, then resolve the settings named in ``options`` (once)."""
    console.configure(quiet=quiet)
    resolved = settings.resolve(options, keys=options.keys(), profile=profile)
    _resolved_url.set(resolved.values.get("database_url"))
    for message in resolved.warnings:
        console.warning(message)
    if verbose:
        shown = dict(resolved.values)
        if "database_url" in shown:
            shown["database_url"] = urls.mask(shown["database_url"])  # never the password
        console.settings_table(shown, resolved.sources)
    return resolved


def _target(
    database_url: str | None,
    lock_timeout: str | None,
    *,
    schema: str | None,
    profile: str | None,
    verbose: bool,
    quiet: bool = False,
    must_exist: bool = False,
) -> tuple[settings.Settings, Engine]:
    """Settings and engine of the commands that only need a database (``must_exist``: a
    command that only reads, whose missing SQLite file is said, not made)."""
    options = {"database_url": database_url, "schema": schema, "lock_timeout": lock_timeout}
    config = _resolve(options, profile=profile, verbose=verbose, quiet=quiet)
    return config, _engine(config, busy_timeout=config.lock_timeout, must_exist=must_exist)


def _engine(config: settings.Settings, **options: Any) -> Engine:
    """The engine of the settings' database URL and schema, closed when the command ends.

    Never an in-memory SQLite database: it would be gone, with what the command wrote, when
    the command exits. A URL that is refused from the environment or a file says where it
    came from.
    """
    try:
        engine = db.make_engine(
            config.database_url, schema=config.schema, in_memory=False, **options
        )
    except UsageError as exc:
        if exc.option != urls.OPTION or exc.source is not None:
            raise
        raise settings.said_where(exc, config.sources.get("database_url", "default")) from None
    if (opened := _engines.get()) is not None:
        opened.append(engine)
    return engine


CreateDatabase = Annotated[
    bool,
    _flag(
        "--create-database",
        help="Create the database on its server first if it is not there (PostgreSQL, "
        "MariaDB/MySQL; a SQLite file is created anyway).",
    ),
]


def _create_database(engine: Engine, asked: bool) -> None:
    """``--create-database``: create the server database of ``engine`` if it is missing."""
    if asked and db.create_database(engine.url):
        console.note(f"created database {engine.url.database} on {urls.mask(engine.url)}")


@app.command(epilog=_example("invoicegen migrate -d postgresql+psycopg://localhost/dev"))
def migrate(
    create_database: CreateDatabase = False,
    database_url: DatabaseUrl = None,
    schema_name: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Upgrade invoicegen's schema to the newest revision."""
    with _handled(debug, database_url, json=json):
        config, engine = _target(
            database_url,
            lock_timeout,
            schema=schema_name,
            profile=profile,
            verbose=verbose,
            quiet=quiet,
        )
        _create_database(engine, create_database)
        revision = schema.upgrade(engine, lock_timeout=config.lock_timeout)
        if json:
            console.emit_json({"database": urls.mask(engine.url), "revision": revision})
        else:
            console.done(f"schema of {db.target(engine)} is at revision {revision}")


def _progress_mode(requested: str | None, *, json: bool) -> console.ProgressMode:
    if requested is None:
        return "none" if json else console.progress_mode(None)
    if requested not in ("bar", "plain", "none"):
        raise UsageError(f"expected bar, plain or none, got {requested!r}", option="--progress")
    return console.progress_mode(requested)  # type: ignore[arg-type]  # checked just above


# The options that shape a dataset: `seed` and `export` take the same ones.
Users = Annotated[
    str | None,
    typer.Option("--users", "-n", metavar="N", help=_help("users", "Users to create, at least 1.")),
]
ClientsPerUser = Annotated[
    str | None,
    typer.Option(
        metavar="COUNTS",
        help=_help(
            "clients_per_user", "Clients per user: N, MIN-MAX or a mix like 1-3:90,4-50:10."
        ),
    ),
]
ContractsPerClient = Annotated[
    str | None,
    typer.Option(
        metavar="COUNTS",
        help=_help("contracts_per_client", "Contracts per client (as above)."),
    ),
]
InvoicesPerContract = Annotated[
    str | None,
    typer.Option(
        metavar="COUNTS",
        help=_help("invoices_per_contract", "Invoices per contract (as above)."),
    ),
]
Seed = Annotated[
    str | None,
    typer.Option(metavar="INT", help=_help("seed", "Same seed, same rows.")),
]
AsOf = Annotated[
    str | None,
    typer.Option(
        metavar="DATE",
        help=_help("as_of", "The 'today' dates are relative to (YYYY-MM-DD)."),
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        metavar="DATE",
        help=_help("since", "Contracts that ended, ended after this day."),
    ),
]
Locale = Annotated[
    str | None,
    typer.Option(metavar="LOCALE", help=_help("locale", "Faker locale.")),
]
BatchSize = Annotated[
    str | None,
    typer.Option(metavar="N", help=_help("batch_size", "Users per transaction.")),
]
Workers = Annotated[
    str | None,
    typer.Option(metavar="N", help=_help("workers", "Generating processes.")),
]
ShardOption = Annotated[
    str | None,
    typer.Option(
        metavar="K/N|auto",
        help=_help(
            "shard",
            "K/N: write only slice K (from 0) of N slices of USERS; run all N. auto: the "
            "index and total your CI runner or Kubernetes Indexed Job sets.",
            default=False,
        ),
    ),
]
Shards = Annotated[
    str | None,
    typer.Option(
        metavar="N",
        help=_help(
            "shards",
            "With --shard auto where the runner sets only an index (Kubernetes): the "
            "number of shards.",
            default=False,
        ),
    ),
]


@app.command(
    epilog=_example("invoicegen seed -n 1000 --seed 42 -d postgresql+psycopg://localhost/dev")
)
def seed(
    users: Users = None,
    clients_per_user: ClientsPerUser = None,
    contracts_per_client: ContractsPerClient = None,
    invoices_per_contract: InvoicesPerContract = None,
    seed: Seed = None,
    as_of: AsOf = None,
    since: Since = None,
    locale: Locale = None,
    batch_size: BatchSize = None,
    workers: Workers = None,
    append: Annotated[
        bool, _flag("--append", help="Add USERS more user trees to the dataset there.")
    ] = False,
    shard: ShardOption = None,
    shards: Shards = None,
    force: Annotated[
        bool, _flag("--force", help="Add to a dataset made with other options or versions.")
    ] = False,
    create_database: CreateDatabase = False,
    synchronous_commit: Annotated[
        str | None,
        typer.Option(
            metavar="on|off",
            help=_help(
                "synchronous_commit",
                "PostgreSQL: off commits without waiting for the disk (a crash loses the last "
                "batches, never corrupts).",
            ),
        ),
    ] = None,
    unlogged: Annotated[
        bool,
        _flag(
            "--unlogged",
            help="PostgreSQL: create the tables UNLOGGED (faster; emptied by a server crash).",
        ),
    ] = False,
    progress: Annotated[
        str | None,
        typer.Option(
            metavar="bar|plain|none",
            help="Progress on stderr: a live bar, a plain line every few seconds (for CI logs), "
            "or none. [default: bar on a terminal, none in a pipe or with --json]",
        ),
    ] = None,
    lock_timeout: LockTimeout = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Migrate, then fill the database with USERS whole user trees."""
    options = {k: v for k, v in locals().items() if k in settings.OPTIONS}
    with _handled(debug, database_url, json=json):
        config = _resolve(options, profile=profile, verbose=verbose, quiet=quiet)
        plan = seeding.SeedPlan.from_settings(
            config,
            shard=_shard(config),
            append=append,
            force=force,
            unlogged=unlogged,
            synchronous_commit=config.synchronous_commit,
        )
        # The workers start up (imports, warm-up) while this process loads SQLAlchemy, connects
        # and migrates: ready for the first batches.
        with seeding.generating_workers(plan) as pool:
            engine = _engine(config, busy_timeout=config.lock_timeout)
            _create_database(engine, create_database)  # after every check of the options
            shown = _progress_mode(progress, json=json)
            with console.seed_progress(plan.users_to_write, mode=shown) as on_progress:
                result = seeding.seed(
                    engine,
                    plan,
                    on_progress=on_progress,
                    lock_timeout=config.lock_timeout,
                    pool=pool,
                )
        if (warning := result.version_warning()) is not None:
            console.warning(warning)
        if json:
            console.emit_json(result.to_json())
        else:
            console.seed_result(result, database=result.database, replay=result.replay())


def _shard(config: settings.Settings) -> settings.Shard | None:
    """The shard to write; with ``--shard auto``, a note on where it came from."""
    sharding = settings.resolve_shard(config.shard, shards=config.shards)
    if config.shard is not None and config.shard.strip().lower() == "auto":
        shown = str(sharding.shard) if sharding.shard else "none (a total of 1)"
        console.note(f"shard {shown}, from {sharding.source}")
    return sharding.shard


@app.command(
    epilog=_example("invoicegen export dataset --format csv -n 1000 --seed 42 --as-of 2026-03-31")
)
def export(
    directory: Annotated[
        str, typer.Argument(metavar="DIR", help="The folder to write (created if missing).")
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="csv|jsonl|sql|parquet",
            help="csv (with load scripts for PostgreSQL, MariaDB and SQLite), JSON lines, "
            "SQL INSERTs (with load scripts), or Parquet (pip install 'invoicegen[parquet]').",
        ),
    ] = "csv",
    users: Users = None,
    clients_per_user: ClientsPerUser = None,
    contracts_per_client: ContractsPerClient = None,
    invoices_per_contract: InvoicesPerContract = None,
    seed: Seed = None,
    as_of: AsOf = None,
    since: Since = None,
    locale: Locale = None,
    batch_size: Annotated[
        str | None,
        typer.Option(
            metavar="N", help=_help("batch_size", "Users per batch (the files do not change).")
        ),
    ] = None,
    workers: Workers = None,
    shard: ShardOption = None,
    shards: Shards = None,
    force: Annotated[
        bool,
        _flag(
            "--force",
            help="Export into a folder that holds an earlier export, replacing its files "
            "(files an export does not write are never touched).",
        ),
    ] = False,
    progress: Annotated[
        str | None,
        typer.Option(
            metavar="bar|plain|none",
            help="Progress on stderr, as for seed.",
        ),
    ] = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Write the dataset seed would write for the same options to files in DIR: no database.

    One file per table (TABLE/part-K-of-N.EXT, K from 1), a manifest with each file's
    sha256 (manifests/part-K-of-N.json, written last), and for csv and sql the scripts
    load.postgresql.sql, load.mariadb.sql and load.sqlite.sql. The same options give the
    same bytes, whatever --workers and --batch-size.
    """
    options = {k: v for k, v in locals().items() if k in settings.OPTIONS}
    with _handled(debug, json=json):
        config = _resolve(options, profile=profile, verbose=verbose, quiet=quiet)
        plan = seeding.SeedPlan.from_settings(
            config, shard=_shard(config), append=False, force=False
        )
        shown = _progress_mode(progress, json=json)
        with console.seed_progress(
            plan.users_to_write, mode=shown, label="exporting"
        ) as on_progress:
            result = seeding.export(
                directory, plan, format=format, force=force, on_progress=on_progress
            )
        console.emit_json(result.to_json()) if json else console.export_result(result)


@app.command(epilog=_example("invoicegen reset --dry-run -d postgresql+psycopg://localhost/dev"))
def reset(
    yes: Annotated[
        bool, _flag("--yes", "-y", help="Do not ask; needed without a terminal.")
    ] = False,
    dry_run: Annotated[
        bool, _flag("--dry-run", help="List what would be dropped; change nothing.")
    ] = False,
    force_protected: Annotated[
        str | None,
        typer.Option(
            metavar="DATABASE",
            help="Reset a protected database; its name (with --schema, the schema's) confirms it.",
        ),
    ] = None,
    drop_foreign_keys: Annotated[
        bool,
        _flag(
            "--drop-foreign-keys",
            help="Drop other tables' foreign keys into invoicegen's tables (only those "
            "constraints; never the tables or their rows). Not on SQLite.",
        ),
    ] = False,
    database_url: DatabaseUrl = None,
    schema_name: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Drop invoicegen's tables (nothing else) and migrate again to an empty schema."""
    with _handled(debug, database_url, json=json):
        config, engine = _target(
            database_url,
            lock_timeout,
            schema=schema_name,
            profile=profile,
            verbose=verbose,
            quiet=quiet,
            must_exist=dry_run,  # a dry run changes nothing, a new empty file included
        )
        target = db.target(engine)
        plan = guards.drop_plan(engine)
        if not dry_run:
            guards.refuse_if_protected(
                engine.url,
                protected=plan.protected,
                force_protected=force_protected,
                schema=db.schema_of(engine),
            )
            guards.refuse_if_host_keys(engine.url, plan, drop_foreign_keys=drop_foreign_keys)
            if not yes and not sys.stdin.isatty():
                raise RefusedError(
                    f"reset drops invoicegen's tables in {target}; pass --yes to confirm"
                )
        console.target(db.describe_target(engine))
        problem = guards.host_keys_problem(engine.url, plan, drop_foreign_keys=drop_foreign_keys)
        keys = plan.host_foreign_keys if drop_foreign_keys else []
        if dry_run:
            if json:
                document = _reset_document(target, plan, keys, dry_run=True, problem=problem)
                console.emit_json(document)
            else:
                console.drop_list(target, plan, keys, dry_run=True, problem=problem)
            return
        if not yes:
            console.drop_list(target, plan, keys, dry_run=False)
            expected = guards.confirmation_name(engine.url, schema=db.schema_of(engine))
            if not console.confirm_by_typing(expected, f"This drops the tables above in {target}."):
                raise RefusedError("reset cancelled; nothing was dropped")
        dropped = guards.reset(
            engine,
            force_protected=force_protected,
            drop_foreign_keys=drop_foreign_keys,
            lock_timeout=config.lock_timeout,
        )
        if json:
            console.emit_json(_reset_document(target, dropped, keys, dry_run=False, problem=None))
        else:
            console.reset_done(target, dropped, dropped_keys=drop_foreign_keys)


def _reset_document(
    target: str,
    plan: guards.ResetPlan,
    keys: Sequence[guards.HostForeignKey],
    *,
    dry_run: bool,
    problem: str | None,
) -> dict[str, Any]:
    """``reset --json``: what it drops (or, with --dry-run, would drop)."""
    return {
        "database": target,
        "dry_run": dry_run,
        "protected": plan.protected,
        "tables": [{"name": t.name, "rows": t.rows} for t in plan.tables],
        "rows": sum(t.rows for t in plan.tables),
        "foreign_keys": [str(key) for key in keys],
        "stray_indexes": [str(index) for index in plan.stray_indexes],
        "problem": problem,
    }


@app.command(epilog=_example("invoicegen protect -d postgresql+psycopg://localhost/staging"))
def protect(
    database_url: DatabaseUrl = None,
    schema_name: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Mark the database protected: reset refuses it, even with --yes."""
    with _handled(debug, database_url, json=json):
        config, engine = _target(
            database_url,
            lock_timeout,
            schema=schema_name,
            profile=profile,
            verbose=verbose,
            quiet=quiet,
        )
        guards.set_protected(engine, True, lock_timeout=config.lock_timeout)
        if json:
            console.emit_json({"database": urls.mask(engine.url), "protected": True})
        else:
            console.done(f"{db.target(engine)} is protected: reset refuses it")


@app.command(epilog=_example("invoicegen unprotect -d postgresql+psycopg://localhost/staging"))
def unprotect(
    database_url: DatabaseUrl = None,
    schema_name: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Remove the protected mark, so that reset (with confirmation) may drop the data again."""
    with _handled(debug, database_url, json=json):
        config, engine = _target(
            database_url,
            lock_timeout,
            schema=schema_name,
            profile=profile,
            verbose=verbose,
            quiet=quiet,
        )
        guards.set_protected(engine, False, lock_timeout=config.lock_timeout)
        if json:
            console.emit_json({"database": urls.mask(engine.url), "protected": False})
        else:
            console.done(f"{db.target(engine)} is not protected")


@app.command("stats", epilog=_example("invoicegen stats --check --json -d sqlite:///invoicegen.db"))
def show_stats(
    check: Annotated[
        bool,
        _flag(
            "--check",
            help="Verify the data against invoicegen's invariants instead; "
            f"exit {CheckFailed.exit_code} listing each violation.",
        ),
    ] = False,
    database_url: DatabaseUrl = None,
    schema_name: Schema = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """What is in the database, at a glance (or, with --check, whether it is sound). Never writes.

    --check takes the expected children per parent and the as-of date from the run manifest;
    for a database without one, from the settings (profile, environment, defaults).
    """
    with _handled(debug, database_url, json=json):
        options = {"database_url": database_url, "schema": schema_name} | dict.fromkeys(
            stats.EXPECTATION_KEYS if check else ()
        )
        config = _resolve(options, profile=profile, verbose=verbose, quiet=quiet)
        engine = _engine(config, must_exist=True)
        mode = "none" if json else console.progress_mode(None)
        if not check:
            with console.stats_progress("stats", mode=mode) as progress:
                data = stats.collect(engine, progress=progress)
            console.emit_json(data.to_json()) if json else console.stats(data)
            return
        expect = stats.Expectations.from_settings(config)
        with console.stats_progress("stats --check", mode=mode) as progress:
            report = stats.check(engine, fallback=expect, progress=progress)
        console.emit_json(report.to_json()) if json else console.check_report(report)
        report.raise_for_violations()
