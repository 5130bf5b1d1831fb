"""Everything invoicegen shows a person: the only module that imports Rich.

Results go to stdout, diagnostics and progress to stderr. Nothing is animated or styled when
the stream is not a terminal (Rich decides per stream), nor anywhere when NO_COLOR is set or the
terminal is dumb (``TERM=dumb``): no escape sequences of any kind, not even cursor control.
No line ends in spaces (a table pads its cells; the padding is trimmed on the way out).
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from rich import box
from rich.columns import Columns
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.prompt import Prompt
from rich.table import Column, Table
from rich.text import Text

from invoicegen.currencies import in_minor_units

if TYPE_CHECKING:  # only for annotations: `--help` and `--version` must not load the engine
    from invoicegen.guards import HostForeignKey, ResetPlan
    from invoicegen.manifest import RunRecord
    from invoicegen.seeding import ExportResult, SeedResult
    from invoicegen.seeding import Progress as SeedProgress
    from invoicegen.stats import (
        Billing,
        CheckReport,
        ChildrenPerParent,
        DateRange,
        Month,
        Stats,
        Step,
        TopClient,
    )

#: How seeding shows its progress: a live bar, occasional plain lines, or nothing.
ProgressMode = Literal["bar", "plain", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("bar", "plain", "none")
#: Seconds between two plain progress lines (the first and the last are always shown).
PLAIN_PROGRESS_EVERY = 5.0
#: The ETA is the users left at the rate of the batches committed in this many last seconds.
ETA_WINDOW = 30.0

# The end of a line: spaces (and tabs) mixed with the style codes around them.
_TRAILING = re.compile(r"(?:[ \t]|\x1b\[[0-9;]*m)*[ \t](?:[ \t]|\x1b\[[0-9;]*m)*(?=\r?\n)")
_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def _trim(match: re.Match[str]) -> str:
    return "".join(_STYLE.findall(match.group()))  # the style codes stay, the spaces go


class _TrimmedLines:
    """A text stream (looked up on each write, so a test runner's swap is seen) whose lines
    never end in spaces: Rich pads table cells to the column's width."""

    def __init__(self, stream: Callable[[], Any]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream().write(_TRAILING.sub(_trim, text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # isatty, flush, fileno, encoding ...
        return getattr(self._stream(), name)


def _dumb_terminal_size(stream: Any) -> tuple[int | None, int | None]:
    """A dumb terminal's (TERM=dumb) width and height: Rich takes one for 80 x 25 whatever it
    says (COLUMNS included), so a narrow one wrapped every wide line. Elsewhere: Rich's own."""
    if os.environ.get("TERM", "").lower() not in ("dumb", "unknown"):
        return None, None
    try:
        if not stream.isatty():
            return None, None
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # a stream without a file descriptor
        return None, None
    columns, lines = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    return (
        int(columns) if columns.isdigit() else size.columns,
        int(lines) if lines.isdigit() else size.lines,
    )


def _consoles(*, quiet: bool, colors: Literal["auto"] | None) -> tuple[Console, Console]:
    (out_width, out_height), (err_width, err_height) = map(
        _dumb_terminal_size, (sys.stdout, sys.stderr)
    )
    return (
        Console(
            file=cast("IO[str]", _TrimmedLines(lambda: sys.stdout)),
            highlight=False,
            soft_wrap=False,
            quiet=quiet,
            color_system=colors,
            width=out_width,
            height=out_height,
        ),
        Console(
            file=cast("IO[str]", _TrimmedLines(lambda: sys.stderr)),
            stderr=True,
            highlight=False,
            soft_wrap=True,
            color_system=colors,
            width=err_width,
            height=err_height,
        ),
    )


out, err = _consoles(quiet=False, colors="auto")
_quiet = False
_emitted = False  # whether this invocation's JSON document is out


def configure(*, quiet: bool = False) -> None:
    """Set up both streams for this invocation.

    ``quiet``: nothing on stdout but a ``--json`` document, nothing on stderr but warnings and
    errors. ``NO_COLOR`` (any value): no escape sequences at all, not even bold. Rich already
    leaves out styles and animation when a stream is not a terminal. A stream that cannot
    encode a character shows ``?`` instead of failing.
    """
    global out, err, _quiet, _emitted
    _quiet, _emitted = quiet, False
    for stream in (sys.stdout, sys.stderr):
        _degrade_gracefully(stream)
    colors: Literal["auto"] | None = None if _no_color() else "auto"
    out, err = _consoles(quiet=quiet, colors=colors)


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM", "").lower() in (
        "dumb",
        "unknown",
    )


def _animated(console: Console) -> bool:
    """Whether ``console`` may redraw lines: a terminal that takes escape sequences."""
    return console.is_terminal and not console.is_dumb_terminal and not _no_color()


def progress_mode(requested: ProgressMode | None) -> ProgressMode:
    """The progress seeding shows: ``requested``, except that a bar needs a terminal that takes
    escape sequences (elsewhere it becomes plain lines). Unset: a bar on such a terminal,
    plain lines on a terminal without them (NO_COLOR, TERM=dumb), nothing in a pipe."""
    if requested is None:
        return "bar" if _animated(err) else "plain" if err.is_terminal else "none"
    if requested == "bar" and not _animated(err):
        return "plain"
    return requested


def _degrade_gracefully(stream: Any) -> None:
    """On a stream that cannot encode all of Unicode (PYTHONIOENCODING=ascii, a latin-1
    terminal), print what it cannot show as ``?`` rather than fail: a finished run must not
    exit 1 over a dash. Rich draws ASCII boxes on such a stream by itself."""
    encoding = str(getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and not encoding.startswith("utf"):
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="replace")


def error(message: str) -> None:
    """One line on stderr: what went wrong."""
    err.print(Text.assemble(("error: ", "bold red"), message))


def traceback(exc: BaseException) -> None:
    """``--debug``: the error's traceback on stderr, before its one-line error. Without local
    variables: they hold database URLs and their passwords."""
    from rich.traceback import Traceback  # only on --debug: it imports Pygments

    err.print(Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=False))


def note(message: str) -> None:
    """One line on stderr about how a command reads its settings (hidden by --quiet)."""
    if not _quiet:
        err.print(Text(message, style="dim"))


def warning(message: str) -> None:
    err.print(Text.assemble(("warning: ", "bold yellow"), message))


def emit_json(data: Mapping[str, Any]) -> None:
    """Exactly one JSON document on stdout."""
    global _emitted
    _emitted = True
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_error(code: int, message: str) -> None:
    """``{"error": {"code": ..., "message": ...}}`` on stdout, unless the command's document
    is already there (``stats --check`` prints its report, then fails): one document, always."""
    if not _emitted:
        emit_json({"error": {"code": code, "message": message}})


def settings_table(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    table = Table(title="settings", title_style="bold", box=None, pad_edge=False)
    table.add_column("setting", style="cyan")
    table.add_column("value")
    table.add_column("from", style="dim")
    for key, value in values.items():
        table.add_row(key, Text("-" if value is None else str(value)), Text(sources[key]))
    show(table, err)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class _SeedMeter:
    """What a progress report says: users done of all, time left, rows and their rate.

    The time left is not guessed from the first batch: that one is a tenth of the others and
    is made while the workers start up, so the start-up alone would be taken for the speed
    (60,000 users said 0:25:37 for a 40-second seed). From the second committed batch on it is
    the users left at the rate of the batches committed in the last :data:`ETA_WINDOW`
    seconds (at least the last two), rounded up to a whole second; before that, ``-``.
    """

    def __init__(self, total_users: int) -> None:
        self.total = total_users
        self.started = time.monotonic()
        self._batches: collections.deque[tuple[float, int]] = collections.deque()

    def _seconds_left(self, now: float, done: int, total: int) -> int | None:
        """Record the batch just committed (``done`` users), then the whole seconds left."""
        if done >= total:
            return 0
        batches = self._batches
        if not batches or batches[-1][1] != done:
            batches.append((now, done))
        # the window: the batches of the last ETA_WINDOW seconds, and the one just before them
        while len(batches) > 2 and batches[1][0] <= now - ETA_WINDOW:
            batches.popleft()
        if len(batches) < 2:  # the first batch alone: its rate is the start-up's
            return None
        (since, done_then), (until, done_now) = batches[0], batches[-1]
        if until <= since:
            return None
        return math.ceil((total - done) * (until - since) / (done_now - done_then))

    def parts(self, event: SeedProgress | None) -> list[str]:
        """The report's parts, most needed first (a narrow line keeps the first ones)."""
        total = event.users_total if event else self.total
        done = event.users_done if event else 0
        rows = event.rows_done if event else 0
        now = time.monotonic()
        elapsed = now - self.started
        left = self._seconds_left(now, done, total) if event else None
        return [
            f"{done:,}/{total:,} users",
            f"ETA {'-' if left is None else _clock(left)}",
            f"{rows:,} rows",
            f"{rows / elapsed if elapsed > 0 else 0:,.0f} rows/s",
            f"{_clock(elapsed)} elapsed",
        ]


def _fitted(parts: Sequence[str], width: int) -> str:
    """As many of ``parts`` (in order; the first always) as fit in ``width`` cells."""
    line = parts[0]
    for part in parts[1:]:
        if len(line) + 3 + len(part) > width:
            break
        line += f" · {part}"
    return line


@contextlib.contextmanager
def seed_progress(
    total_users: int, *, mode: ProgressMode, label: str = "seeding"
) -> Iterator[Callable[[SeedProgress], None]]:
    """Seeding's progress on stderr, after each committed batch: a live bar, plain lines at
    most every :data:`PLAIN_PROGRESS_EVERY` seconds (and the last), or nothing. Hidden by
    ``--quiet``. Every value shown is whole at any width: what does not fit is left out."""
    if _quiet or mode == "none":
        yield lambda _event: None
        return
    meter = _SeedMeter(total_users)
    if mode == "plain":
        shown = [-PLAIN_PROGRESS_EVERY]

        def line(event: SeedProgress) -> None:
            parts = meter.parts(event)  # every batch counts towards the ETA, shown or not
            now = time.monotonic()
            if now - shown[0] >= PLAIN_PROGRESS_EVERY or event.users_done >= event.users_total:
                shown[0] = now
                err.print(Text(f"{label} " + " · ".join(parts)), soft_wrap=True)

        yield line
        return
    bar_column = BarColumn(bar_width=1)
    with Progress(
        TextColumn(label),
        bar_column,
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total_users)

        def update(event: SeedProgress | None) -> None:
            # "seeding", the bar, the text, a space between each, and one cell spare at the
            # end (a terminal may wrap a line that fills it). The bar gets 12 cells or more,
            # unless the users alone need them.
            text = _fitted(meter.parts(event), err.width - 22)
            bar = err.width - 10 - len(text)
            bar_column.bar_width = bar if bar >= 10 else 1
            progress.update(task, completed=event.users_done if event else 0, description=text)

        update(None)
        yield update


@contextlib.contextmanager
def stats_progress(command: str, *, mode: ProgressMode) -> Iterator[Callable[[Step], None]]:
    """The steps of ``stats`` and ``stats --check`` on stderr, as the library reports them: a
    spinner naming the current step whole (folded onto a second line in a narrow terminal),
    with the time it has run, on a terminal that takes escape sequences (gone when the command
    ends); a plain line per step (``mode="plain"``: a terminal without them); or nothing
    (pipes, ``--json``, ``--quiet``)."""
    if _quiet or mode == "none":
        yield lambda _step: None
        return
    if mode == "plain":

        def line(step: Step) -> None:
            err.print(Text(f"{command} {step.number}/{step.total} · {step.name}"), soft_wrap=True)

        yield line
        return
    # The spinner, the time (7 cells), a space after each, then the step: folded between words
    # onto more lines when it is longer than the rest of the line, never cut; one cell is left
    # spare at the end (a terminal may wrap a line that fills it). The time goes first, so a
    # folded step reads on, unbroken, on the next line.
    name = Column(max_width=max(err.width - 11, 10), overflow="fold")
    with Progress(
        SpinnerColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False, table_column=name),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(command, total=None)

        def update(step: Step) -> None:
            text = f"{command} {step.number}/{step.total} · {step.name}"
            progress.update(task, description=text)
            progress.refresh()  # each step drawn, however fast

        yield update


def _whole_width(console: Console, renderable: Any) -> int:
    """The narrowest width, from the console's, at which Rich shortens no cell to ``…``.

    Cells wrap between words; a word (a number, a URL, a seed) is never cut or folded: Rich
    would end it with ``…`` instead, and that is what is looked for."""
    width = console.width
    while width < _WIDEST:
        options = console.options.update_width(width)
        if "…" not in "".join(segment.text for segment in console.render(renderable, options)):
            break
        width += 1
    return width


_WIDEST = 1000


def show(renderable: Any, stream: Console | None = None) -> None:
    """Print a table (or columns of them) whole: at the console's width when it fits, else
    wider (a terminal then wraps its lines; a pipe gets them long)."""
    console = out if stream is None else stream
    needed = _whole_width(console, renderable)
    if needed <= console.width:
        console.print(renderable)
        return
    width = console.width
    console.width = needed
    try:
        console.print(renderable)
    finally:
        console.width = width


def heading(text: str) -> None:
    # Soft-wrapped, like every line that names a value (a URL, a seed): the terminal folds it,
    # Rich never breaks it, so a pipe or a copy-paste gets it whole.
    out.print(Text(text, style="bold"), soft_wrap=True)


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
    what = f"users {result.first_user + 1:,}–{result.first_user + result.users:,}"
    if result.plan.shard is not None:
        what += f" (shard {result.plan.shard})"
    heading(f"Seeded {what} into {database}")
    show(_counts_table(result.written))
    _rate(result, f", {result.batches} batch{'es' if result.batches != 1 else ''}")
    out.print(
        f"seed [bold]{result.seed}[/], as of {result.as_of}; to replay this run:", soft_wrap=True
    )
    # Soft-wrapped: the terminal folds it, and a copy-paste gets one runnable line.
    out.print(Text(f"  {replay}", style="dim"), soft_wrap=True)
    pins = " ".join(f"{_PACKAGES[name]}=={result.versions[name]}" for name in _PACKAGES)
    out.print(
        Text(
            f"made with {made_with(result.versions)} "
            f"(install the same for the same rows: pip install {pins})",
            style="dim",
        ),
        soft_wrap=True,
    )


def _rate(result: SeedResult | ExportResult, more: str = "") -> None:
    out.print(
        f"[bold]{result.rows:,}[/] rows in [bold]{result.seconds:.2f}[/] s "
        f"([bold green]{result.rows_per_second:,.0f}[/] rows/s, "
        f"{result.workers} worker{'s' if result.workers != 1 else ''}{more})",
        soft_wrap=True,
    )


def export_result(result: ExportResult) -> None:
    what = f"users {result.first_user + 1:,}–{result.first_user + result.users:,}"
    if result.plan.shard is not None:
        what += f" (shard {result.plan.shard})"
    heading(f"Exported {what} to {result.directory} as {result.format}")
    show(_counts_table(result.written))
    _rate(result)
    out.print(
        f"seed [bold]{result.plan.seed}[/], as of {result.plan.as_of}; files, counts and "
        f"checksums in {os.path.join(result.directory, result.manifest)}",
        soft_wrap=True,
    )
    if result.load_scripts:
        from invoicegen.seeding.exports import LOAD_COMMANDS

        commands = list(LOAD_COMMANDS.values())
        out.print(
            Text(
                f"load it into a schema that invoicegen migrate made, from inside "
                f"{result.directory}: {', '.join(commands[:-1])} or {commands[-1]}",
                style="dim",
            ),
            soft_wrap=True,
        )


#: The packages whose versions decide the generated values, as pip spells them.
_PACKAGES = {"faker": "Faker", "factory-boy": "factory-boy"}


def made_with(versions: Any) -> str:
    """A manifest's versions as "Faker 40.63.0, factory-boy 3.3.3" (unknown if unrecorded)."""
    recorded = versions if isinstance(versions, dict) else {}
    return ", ".join(
        f"{shown} {recorded.get(name, 'unknown')}" for name, shown in _PACKAGES.items()
    )


_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: float, maximum: float, width: int) -> str:
    """A horizontal bar of ``width`` cells at ``maximum``, in eighths of a cell."""
    if maximum <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / maximum * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_BLOCKS[rest] if rest else "")


def _titled(title: str, **kwargs: Any) -> Table:
    return Table(title=title, title_style="bold", title_justify="left", **kwargs)


def _distribution_chart(level: ChildrenPerParent) -> Table:
    """Parents per number of children; with a recorded mix, per part of it, each part's share
    of the parents beside the share the mix asked for."""
    table = _titled(f"{level.child} per {level.parent[:-1]}", box=None, pad_edge=False)
    table.add_column(level.child, justify="right")
    table.add_column("", style="cyan", min_width=16)
    table.add_column(level.parent, justify="right")
    table.caption = f"mean {level.mean:.2f}"
    table.caption_justify = "left"
    mix = level.mix
    if mix is None or len(mix.parts) == 1:
        largest = max(level.distribution.values(), default=0)
        for children, parents in level.distribution.items():
            table.add_row(str(children), bar(parents, largest, 16), f"{parents:,}")
        return table
    table.caption += f", seeded with {mix}"
    table.add_column("share", justify="right")
    table.add_column("mix", justify="right", style="dim")
    weights = dict(mix.parts)
    rows = level.by_part()
    largest = max(parents for _, parents in rows)
    total = sum(parents for _, parents in rows)
    for part, parents in rows:
        table.add_row(
            "other" if part is None else str(part),
            bar(parents, largest, 16),
            f"{parents:,}",
            f"{parents / total:.0%}" if total else "-",
            "-" if part is None else f"{weights[part] / mix.total:.0%}",
        )
    return table


def _months_chart(months: Sequence[Month], *, one_currency: bool) -> Table:
    """Invoices per month; the amount billed only when every invoice is in one currency
    (the billing view below has it per currency), else the bars follow the counts."""
    table = _titled("invoices per month (by period end)", box=None, pad_edge=False)
    table.add_column("month")
    table.add_column("invoices", justify="right")
    if one_currency:
        table.add_column("billed", justify="right")
    table.add_column("", style="green", min_width=30)

    def size(month: Month) -> float:
        return float(month.billed if one_currency else month.invoices)

    largest = max((size(m) for m in months), default=0.0)
    for month in months:
        billed = [f"{month.billed:,}"] if one_currency else []
        table.add_row(month.month, f"{month.invoices:,}", *billed, bar(size(month), largest, 30))
    return table


def _runs_table(runs: Sequence[RunRecord]) -> Table:
    table = _titled("run manifest", box=box.SIMPLE_HEAD, pad_edge=False)
    sharded = any(run.shard for run in runs)
    # Never cut, never folded: where the table does not fit, _runs shows a few lines per run.
    for column in ("run", "status", "seed", "as of", "users", "shard", "started"):
        if column != "shard" or sharded:
            justify: Literal["left", "right"] = "right" if column in ("run", "users") else "left"
            table.add_column(column, justify=justify, no_wrap=True)
    table.add_column("options", ratio=1)  # wrapped between options
    for run in runs:
        table.add_row(
            str(run.id),
            Text(run.status),
            str(run.seed),
            str(run.as_of or "-"),
            f"{run.users_done:,}/{run.users:,}",
            *([Text(run.shard or "-")] if sharded else []),
            Text(run.started_at.isoformat(sep=" ", timespec="minutes")),
            Text(_options_text(run)),
        )
    return table


def _runs(runs: Sequence[RunRecord]) -> None:
    """The run manifest: a table where it fits, else a few lines per run, each value whole."""
    table = _runs_table(runs)
    if _whole_width(out, table) <= out.width:
        out.print(table)
        return
    heading("run manifest")
    for run in runs:
        out.print(
            f"run {run.id}  {run.status}  seed {run.seed}  as of {run.as_of or '-'}",
            soft_wrap=True,
            markup=False,
        )
        last = run.first_user + run.users
        shard = f", shard {run.shard}" if run.shard else ""
        out.print(
            f"  users {run.first_user + 1:,}–{last:,} ({run.users_done:,}/{run.users:,} done"
            f"{shard}), started {run.started_at.isoformat(sep=' ', timespec='minutes')} UTC",
            soft_wrap=True,
            markup=False,
        )
        out.print(Padding(Text(_options_text(run)), (0, 0, 0, 2)))  # wrapped between options


def _versions(runs: Sequence[RunRecord]) -> None:
    """The versions that made the dataset: one line, or one per set of runs that differ."""
    made: dict[str, list[int]] = {}
    for run in runs:
        made.setdefault(made_with(run.versions), []).append(run.id)
    if len(made) == 1:
        out.print(Text(f"made with {next(iter(made))}"), soft_wrap=True)
        return
    for text, ids in made.items():
        which = "run" + "s" * (len(ids) > 1) + " " + ", ".join(map(str, ids))
        out.print(Text(f"{which} made with {text}"), soft_wrap=True)


def _options_text(run: RunRecord) -> str:
    options = run.options
    if isinstance(options, dict):
        # clients_per_user=1-3 reads as clients=1-3: the column is narrow.
        options = " ".join(f"{k.split('_per_')[0]}={v}" for k, v in options.items())
    return "" if options is None else str(options)


def _top_clients_table(clients: Sequence[TopClient]) -> Table:
    rows = [
        (
            Text(f"#{c.id} {c.name}"),
            Text(c.company_name),
            f"#{c.user_id}",
            f"{c.invoices:,}",
            f"{c.billed:,}",
        )
        for c in clients
    ]
    table = _titled(
        f"top {len(clients)} clients by billed amount", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for column in ("client", "company"):
        table.add_column(column)  # wrapped at spaces; never cut (see show)
    for index, column in enumerate(("user", "invoices", "billed"), start=2):
        widest = max(len(column), *(len(str(row[index])) for row in rows))
        table.add_column(column, justify="right", no_wrap=True, min_width=widest)
    for row in rows:
        table.add_row(*row)
    return table


def _billed_by_currency(data: Stats) -> dict[str, str]:
    """What was billed, per currency (one total for data that predates the currencies)."""
    if data.billing is None or data.billing.predating or not data.billing.by_status:
        return {"": f"{data.amount_total:,}"}
    totals: dict[str, Decimal] = {}
    for status in data.billing.by_status:
        currency = str(status.currency)
        totals[currency] = totals.get(currency, Decimal(0)) + status.amount
    return {
        currency: f"{currency} {in_minor_units(totals[currency], currency):,}"
        for currency in sorted(totals)
    }


def stats(data: Stats) -> None:
    heading(f"{data.database}  (schema revision {data.revision})")
    show(_counts_table(data.counts))
    if not data.counts.get("users"):
        out.print(Text("no data yet: fill the database with `invoicegen seed`", style="dim"))
        return
    out.print()
    charts = [_distribution_chart(level) for level in data.children if level.distribution]
    show(Columns(charts, padding=(1, 4)))
    money = _titled("invoices and contracts", show_header=False)
    money.add_column("", style="cyan")
    money.add_column("", justify="right")
    billed = _billed_by_currency(data)
    for currency, amount in billed.items():  # amounts in different currencies never add up
        money.add_row(f"billed in total{f' ({currency})' if len(billed) > 1 else ''}", amount)
    if len(billed) == 1:
        money.add_row("mean invoice", "-" if data.amount_mean is None else f"{data.amount_mean:,}")
    money.add_row("first / last contract start", _range(data.contract_starts))
    money.add_row("invoice periods from / to", _range(data.invoice_periods))
    money.add_row("contracts still running", f"{data.ongoing_contracts:,}")
    show(money)
    if data.months:
        out.print()
        show(_months_chart(data.months, one_currency=len(billed) == 1))
    if data.top_clients:
        out.print()
        show(_top_clients_table(data.top_clients))
    out.print()
    billing(data.billing)
    if data.runs:
        _runs(data.runs)
        _versions(data.runs)
    else:
        out.print(Text("no run manifest: seeded by an older invoicegen or another tool", "dim"))


#: Months of billing shown in the table (``--json`` has them all).
BILLED_MONTHS_SHOWN = 12
#: Currencies with a column in the billed-per-month table (the most billed; ``--json``: all).
CURRENCY_COLUMNS = 4


def _units(value: Decimal | None) -> str:
    """Money in whole units for the overview tables (``--json`` has it exactly)."""
    return "-" if not value else f"{value:,.0f}"


def _status_table(data: Billing) -> Table:
    """One row per currency (and one of counts), one column per status."""
    statuses = list(dict.fromkeys(t.status for t in data.by_status))
    table = _titled("invoices by status", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for status in statuses:
        table.add_column(status or "(before billing)", justify="right")
    cells = {(t.status, t.currency): t for t in data.by_status}
    counts = {s: sum(t.invoices for t in data.by_status if t.status == s) for s in statuses}
    table.add_row("invoices", *(f"{counts[s]:,}" for s in statuses), style="bold")
    for currency in sorted({t.currency for t in data.by_status if t.currency is not None}):
        table.add_row(
            currency,
            *(_units(getattr(cells.get((s, currency)), "amount", None)) for s in statuses),
        )
    return table


def _receivables_table(data: Billing) -> Table:
    from invoicegen.stats import AGE_BUCKETS  # not at module level: stats loads SQLAlchemy

    table = _titled(
        f"receivables by days past due on {data.as_of}", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("")
    for label, *_ in AGE_BUCKETS:
        table.add_column(label, justify="right")
    table.add_column("total", justify="right", style="bold")
    table.add_column("DSO", justify="right")
    for owed in data.receivables:
        table.add_row(
            owed.currency,
            *(_units(owed.by_age[label]) for label, *_ in AGE_BUCKETS),
            _units(owed.total),
            "-" if owed.dso_days is None else f"{owed.dso_days:,.0f}",
        )
    table.caption = (
        f"DSO (days sales outstanding) = receivables / billed in the {data.dso_window_days} "
        f"days to {data.as_of} × {data.dso_window_days}"
    )
    table.caption_justify = "left"
    return table


def _last_months(last: str, count: int) -> list[str]:
    """The ``count`` calendar months (YYYY-MM) up to and including ``last``."""
    year, month = map(int, last.split("-"))
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months[::-1]


def _billed_months_table(data: Billing) -> Table:
    last = data.as_of.isoformat()[:7] if data.as_of else max(m.month for m in data.billed_months)
    invoices: dict[str, int] = {}
    for m in data.billed_months:
        invoices[m.currency] = invoices.get(m.currency, 0) + m.invoices
    ranked = sorted(invoices, key=lambda c: (-invoices[c], c))  # the most used first
    currencies, others = ranked[:CURRENCY_COLUMNS], ranked[CURRENCY_COLUMNS:]
    table = _titled(
        f"billed per month (last {BILLED_MONTHS_SHOWN})", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("month")
    table.add_column("invoices", justify="right")
    for currency in currencies:
        table.add_column(currency, justify="right")
    cells = {(m.month, m.currency): m for m in data.billed_months}
    for month in _last_months(last, BILLED_MONTHS_SHOWN):
        found = [m for (mon, _), m in cells.items() if mon == month]
        table.add_row(
            month,
            f"{sum(m.invoices for m in found):,}",
            *(_units(getattr(cells.get((month, c)), "billed", None)) for c in currencies),
        )
    table.caption = "by issue date, void invoices left out"
    if others:
        table.caption += f"; --json has {', '.join(others)} too, and every month"
    table.caption_justify = "left"
    return table


def billing(data: Billing | None) -> None:
    """The billing view: statuses, receivables by age with DSO, billed per month."""
    if data is None:
        out.print(Text("no billing columns: run `invoicegen migrate` to add them", style="dim"))
        out.print()
        return
    heading(f"billing as of {data.as_of or '-'} (from {data.as_of_source}), in whole units")
    show(_status_table(data))
    if data.predating:
        out.print(
            Text(
                f"{data.predating:,} invoices predate the billing columns (seeded by "
                "invoicegen 0.1): no status, dates or currency",
                style="dim",
            )
        )
    out.print()
    if data.receivables:
        show(_receivables_table(data))
        out.print()
    if data.billed_months:
        show(_billed_months_table(data))
        out.print()


def _range(value: DateRange) -> str:
    return "-" if value.first is None else f"{value.first} → {value.last}"


def check_report(report: CheckReport) -> None:
    expect = report.expectations
    heading(f"checking {report.database}; expectations from {expect.source}")
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("", style="dim")
    for result in report.results:
        if result.violations is None:
            mark = Text(f"skipped ({result.skipped})", style="dim")
        elif result.ok:
            mark = Text("ok", style="green")
        else:
            mark = Text(f"{result.violations:,} violation(s)", style="bold red")
        examples = ", ".join(f"#{i}" for i in result.examples)
        table.add_row(result.name, mark, f"{result.table} {examples}" if examples else "")
    show(table)
    for note in report.notes:
        out.print(Text.assemble(("note: ", "bold yellow"), note))


def target(description: str) -> None:
    """What a destructive command acts on, said before it acts (not with --quiet: a prompt
    names it anyway)."""
    if not _quiet:
        err.print(Text.assemble(("target: ", "bold"), description))


def drop_list(
    target: str,
    plan: ResetPlan,
    keys: Sequence[HostForeignKey] = (),
    *,
    dry_run: bool,
    problem: str | None = None,
) -> None:
    """What a reset drops: invoicegen's tables, and the host foreign keys it was told to drop."""
    stream = out if dry_run else err
    # The title on a line of its own: a table's title wraps to the table's width, and the URL
    # would be split across lines.
    title = Text(f"{'Would drop' if dry_run else 'About to drop'} from {target}", style="bold")
    table = Table()
    table.add_column("table", style="cyan")
    table.add_column("rows", justify="right")
    for item in plan.tables:
        table.add_row(item.name, f"{item.rows:,}")
    for index in plan.stray_indexes:
        table.add_row(f"index {index}, of invoicegen's name", "")
    for key in keys:
        table.add_row(f"foreign key {key} (the constraint only)", "")
    if plan.tables or keys:
        stream.print(title, soft_wrap=True)
        show(table, stream)
    else:
        stream.print(f"nothing of invoicegen's in {target}", soft_wrap=True)
    if plan.protected:
        warning(f"{target} is protected: reset refuses it without --force-protected")
    if problem is not None:
        warning(problem)


def reset_done(target: str, plan: ResetPlan, *, dropped_keys: bool) -> None:
    rows = sum(t.rows for t in plan.tables)
    keys = plan.host_foreign_keys if dropped_keys else []
    if keys:
        done(f"dropped foreign key(s) {'; '.join(str(key) for key in keys)} (the tables stay)")
    done(f"dropped {len(plan.tables)} tables ({rows:,} rows) and re-created the schema in {target}")


def confirm_by_typing(expected: str, prompt: str) -> bool:
    answer = Prompt.ask(
        f"{prompt} Type [bold]{expected}[/] to confirm",
        console=err,
        default="",
        show_default=False,  # not an empty "()"
    )
    return answer.strip() == expected


def done(message: str) -> None:
    out.print(Text.assemble(("✓ ", "bold green"), message), soft_wrap=True)
