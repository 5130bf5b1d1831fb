"""The `invoicegen` command: parse options, call one library function, render the result.

The only module that imports Typer. Errors are translated in one place, :func:`_handled`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from invoicegen import __version__, console, db, seeding, settings, stats
from invoicegen.errors import InvoicegenError, RefusedError

app = typer.Typer(
    name="invoicegen",
    help="Seed a database with coherent users → clients → contracts → invoices.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold database URLs with passwords
    rich_markup_mode="rich",
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        "-d",
        help="SQLAlchemy URL [env: INVOICEGEN_DATABASE_URL] [default: sqlite:///invoicegen.db]",
        show_default=False,
    ),
]
Profile = Annotated[
    str | None, typer.Option(help="Named profile from [tool.invoicegen.profiles] in pyproject.toml")
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no notes on stderr.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show each setting and its source.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
LockTimeout = Annotated[
    str | None,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for another invoicegen run on the same database. [default: 60]",
    ),
]


def _version(value: bool) -> None:
    if value:
        console.out.print(f"invoicegen {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Seed a database with coherent users → clients → contracts → invoices."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM takes the same clean path as Ctrl-C while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _handled(debug: bool, url: str | None = None) -> Iterator[None]:
    """The one place errors become a line on stderr and an exit code."""
    try:
        with _sigterm_interrupts():
            yield
    except InvoicegenError as exc:
        if debug:
            raise
        console.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            raise
        message = " ".join(str(exc).split())
        if url:
            with contextlib.suppress(InvoicegenError):
                message = db.scrub(message, db.parse_url(url))
        console.error(f"{type(exc).__name__}: {message} (rerun with --debug for the traceback)")
        raise typer.Exit(1) from None


def _resolve(options: dict[str, Any], *, profile: str | None, verbose: bool) -> settings.Settings:
    resolved = settings.resolve(options, profile=profile)
    for message in resolved.warnings:
        console.warning(message)
    if verbose:
        console.settings_table(resolved.values, resolved.sources)
    return resolved


def _target(
    database_url: str | None, lock_timeout: str | None, *, profile: str | None, verbose: bool
) -> tuple[settings.Settings, Engine]:
    """Settings and engine of the commands that only need a database."""
    options = {"database_url": database_url, "lock_timeout": lock_timeout}
    config = _resolve(options, profile=profile, verbose=verbose)
    return config, db.make_engine(config.database_url, busy_timeout=config.lock_timeout)


@app.command()
def migrate(
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Upgrade invoicegen's schema to the newest revision."""
    with _handled(debug, database_url):
        config, engine = _target(database_url, lock_timeout, profile=profile, verbose=verbose)
        revision = db.upgrade(engine, lock_timeout=config.lock_timeout)
        console.done(f"schema of {db.mask(engine.url)} is at revision {revision}")


@app.command()
def seed(
    users: Annotated[
        str | None, typer.Option("--users", "-n", help="Users to create. [default: 50]")
    ] = None,
    clients_per_user: Annotated[
        str | None, typer.Option(help="N or MIN-MAX. [default: 1-3]")
    ] = None,
    contracts_per_client: Annotated[
        str | None, typer.Option(help="N or MIN-MAX. [default: 1-3]")
    ] = None,
    invoices_per_contract: Annotated[
        str | None, typer.Option(help="N or MIN-MAX. [default: 1-5]")
    ] = None,
    seed: Annotated[
        str | None, typer.Option(help="Same seed, same rows. [default: random, printed]")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="The 'today' dates are relative to (YYYY-MM-DD).")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="Faker locale. [default: en_US]")] = None,
    batch_size: Annotated[
        str | None, typer.Option(help="Users per transaction. [default: 1000]")
    ] = None,
    workers: Annotated[
        str | None, typer.Option(help="Generating processes. [default: CPU cores]")
    ] = None,
    lock_timeout: LockTimeout = None,
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    json: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Migrate, then fill the database with USERS whole user trees."""
    options = {k: v for k, v in locals().items() if k in settings.OPTIONS}
    with _handled(debug, database_url):
        config = _resolve(options, profile=profile, verbose=verbose)
        engine = db.make_engine(config.database_url, busy_timeout=config.lock_timeout)
        plan = seeding.SeedPlan(
            users=config.users,
            clients_per_user=config.clients_per_user,
            contracts_per_client=config.contracts_per_client,
            invoices_per_contract=config.invoices_per_contract,
            seed=config.seed,
            as_of=config.as_of,
            locale=config.locale,
            batch_size=config.batch_size,
            workers=config.workers or seeding.default_workers(),
        )
        with console.seed_progress(plan.users, enabled=not (quiet or json)) as on_progress:
            result = seeding.seed(
                engine, plan, on_progress=on_progress, lock_timeout=config.lock_timeout
            )
        replay = (
            f"invoicegen seed --users {plan.users} --seed {result.seed} --as-of {result.as_of} "
            f"--clients-per-user {plan.clients_per_user} --contracts-per-client "
            f"{plan.contracts_per_client} --invoices-per-contract {plan.invoices_per_contract}"
            + (f" --locale {plan.locale}" if plan.locale != "en_US" else "")
        )
        if json:
            console.emit_json(
                {
                    "database": db.mask(engine.url),
                    "counts": result.counts,
                    "rows": result.rows,
                    "seconds": round(result.seconds, 3),
                    "rows_per_second": round(result.rows_per_second, 1),
                    "seed": result.seed,
                    "as_of": result.as_of.isoformat(),
                    "revision": result.revision,
                    "workers": result.workers,
                    "batches": result.batches,
                    "replay": replay,
                }
            )
        else:
            console.seed_result(result, database=db.mask(engine.url), replay=replay)


@app.command()
def reset(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; needed without a terminal.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be dropped; change nothing.")
    ] = False,
    force_protected: Annotated[
        str | None,
        typer.Option(metavar="DATABASE", help="Reset a protected database; its name confirms it."),
    ] = None,
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Drop invoicegen's tables (nothing else) and migrate again to an empty schema."""
    with _handled(debug, database_url):
        config, engine = _target(database_url, lock_timeout, profile=profile, verbose=verbose)
        target = db.mask(engine.url)
        plan = db.drop_plan(engine)
        if not dry_run:
            db.refuse_if_protected(
                engine.url, protected=plan.protected, force_protected=force_protected
            )
            if not yes and not sys.stdin.isatty():
                raise RefusedError(
                    f"reset drops invoicegen's tables in {target}; pass --yes to confirm"
                )
        console.target(db.describe_target(engine.url))
        if dry_run:
            console.drop_list(target, plan.tables, dry_run=True, protected=plan.protected)
            return
        if not yes:
            console.drop_list(target, plan.tables, dry_run=False, protected=plan.protected)
            expected = db.confirmation_name(engine.url)
            if not console.confirm_by_typing(expected, f"This drops the tables above in {target}."):
                raise RefusedError("reset cancelled; nothing was dropped")
        dropped = db.reset(
            engine, force_protected=force_protected, lock_timeout=config.lock_timeout
        )
        rows = sum(t.rows for t in dropped)
        console.done(
            f"dropped {len(dropped)} tables ({rows:,} rows) and re-created the schema in {target}"
        )


@app.command()
def protect(
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Mark the database protected: reset refuses it, even with --yes."""
    with _handled(debug, database_url):
        config, engine = _target(database_url, lock_timeout, profile=profile, verbose=verbose)
        db.set_protected(engine, True, lock_timeout=config.lock_timeout)
        console.done(f"{db.mask(engine.url)} is protected: reset refuses it")


@app.command()
def unprotect(
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    lock_timeout: LockTimeout = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Remove the protected mark, so that reset (with confirmation) may drop the data again."""
    with _handled(debug, database_url):
        config, engine = _target(database_url, lock_timeout, profile=profile, verbose=verbose)
        db.set_protected(engine, False, lock_timeout=config.lock_timeout)
        console.done(f"{db.mask(engine.url)} is not protected")


@app.command("stats")
def show_stats(
    database_url: DatabaseUrl = None,
    profile: Profile = None,
    json: Json = False,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """What is in the database, at a glance. Never writes."""
    with _handled(debug, database_url):
        config = _resolve({"database_url": database_url}, profile=profile, verbose=verbose)
        data = stats.collect(db.make_engine(config.database_url, must_exist=True))
        if json:
            console.emit_json(data.to_json())
        else:
            console.stats(data)
