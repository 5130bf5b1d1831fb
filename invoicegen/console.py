"""Everything invoicegen shows a person: the only module that imports Rich.

Results go to stdout, diagnostics and progress to stderr. Nothing is animated or coloured when
the stream is not a terminal (Rich decides per stream, and honours NO_COLOR).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from invoicegen.db import TableRows
from invoicegen.seeding import Progress as SeedProgress
from invoicegen.seeding import SeedResult
from invoicegen.stats import Stats

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr: what went wrong."""
    err.print(Text.assemble(("error: ", "bold red"), message))


def warning(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), message))


def note(message: str) -> None:
    err.print(Text(message, style="dim"))


def emit_json(data: Mapping[str, Any]) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def settings_table(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    table = Table(title="settings", title_style="bold", box=None, pad_edge=False)
    table.add_column("setting", style="cyan")
    table.add_column("value")
    table.add_column("from", style="dim")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value), sources[key])
    err.print(table)


@contextlib.contextmanager
def seed_progress(total_users: int, *, enabled: bool) -> Iterator[Callable[[SeedProgress], None]]:
    """A live progress bar on a terminal; a no-op callback otherwise."""
    if not enabled or not err.is_terminal:
        yield lambda _event: None
        return
    columns = (
        TextColumn("[bold]seeding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("users"),
        TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("seed", total=total_users, rows=0, rate=0.0)

        def update(event: SeedProgress) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = event.rows_done / elapsed if elapsed else 0.0
            bar.update(task, completed=event.users_done, rows=event.rows_done, rate=rate)

        yield update


def heading(text: str) -> None:
    out.print(Text(text, style="bold"))


def _counts_table(counts: Mapping[str, int]) -> Table:
    table = Table()
    table.add_column("table", style="cyan")
    table.add_column("rows", justify="right", style="bold")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    table.add_section()
    table.add_row("total", f"{sum(counts.values()):,}")
    return table


def seed_result(result: SeedResult, *, database: str, replay: str) -> None:
    heading(f"Seeded {database}")
    out.print(_counts_table(result.counts))
    out.print(
        f"[bold]{result.rows:,}[/] rows in [bold]{result.seconds:.2f}[/] s "
        f"([bold green]{result.rows_per_second:,.0f}[/] rows/s, "
        f"{result.workers} worker{'s' if result.workers != 1 else ''}, "
        f"{result.batches} batch{'es' if result.batches != 1 else ''})"
    )
    out.print(f"seed [bold]{result.seed}[/], as of {result.as_of}  ·  replay: [dim]{replay}[/]")


def stats(data: Stats) -> None:
    heading(f"{data.database}  (schema revision {data.revision})")
    out.print(_counts_table(data.counts))
    children = Table(title="children per parent", title_style="bold", title_justify="left")
    for column in ("parent → child", "min", "mean", "max"):
        children.add_column(column, justify="left" if column.startswith("parent") else "right")
    for level in data.children:
        children.add_row(
            f"{level.parent} → {level.child}", str(level.min), f"{level.mean:.2f}", str(level.max)
        )
    out.print(children)
    money = Table(
        title="invoices and contracts", title_style="bold", title_justify="left", show_header=False
    )
    money.add_column("", style="cyan")
    money.add_column("", justify="right")
    money.add_row("billed in total", f"{data.amount_total:,}")
    money.add_row("mean invoice", "-" if data.amount_mean is None else f"{data.amount_mean:,}")
    money.add_row("first / last contract start", _range(data.contract_starts))
    money.add_row("invoice periods from / to", _range(data.invoice_periods))
    money.add_row("contracts still running", f"{data.ongoing_contracts:,}")
    out.print(money)


def _range(value: Any) -> str:
    return "-" if value.first is None else f"{value.first} → {value.last}"


def target(description: str) -> None:
    """What a destructive command acts on, said before it acts."""
    err.print(Text.assemble(("target: ", "bold"), description))


def drop_list(
    target: str, tables: Sequence[TableRows], *, dry_run: bool, protected: bool = False
) -> None:
    table = Table(
        title=f"{'Would drop' if dry_run else 'Dropping'} from {target}",
        title_style="bold",
        title_justify="left",
    )
    table.add_column("table", style="cyan")
    table.add_column("rows", justify="right")
    for item in tables:
        table.add_row(item.name, f"{item.rows:,}")
    (out if dry_run else err).print(table if tables else f"nothing of invoicegen's in {target}")
    if protected:
        warning(f"{target} is protected: reset refuses it without --force-protected")


def confirm_by_typing(expected: str, prompt: str) -> bool:
    answer = Prompt.ask(f"{prompt} Type [bold]{expected}[/] to confirm", console=err, default="")
    return answer.strip() == expected


def done(message: str) -> None:
    out.print(Text.assemble(("✓ ", "bold green"), message))
