"""``invoicegen export``: the dataset ``seed`` would write, as files in a folder, no database.

The folder's layout, the same for one process or N shards (``K`` counts from 1 here, zero-
padded to the width of ``N``, so that names sort in shard order)::

    DIR/users/part-K-of-N.EXT          one file per table and shard: users, clients,
    DIR/clients/part-K-of-N.EXT        contracts, invoices (an unsharded export is
    DIR/contracts/part-K-of-N.EXT      part-1-of-1)
    DIR/invoices/part-K-of-N.EXT
    DIR/manifests/part-K-of-N.json     what made the part: seed, options, versions, counts,
                                       each file's rows, size and sha256 (written last)
    DIR/load.postgresql.sql            csv and sql: load every part into a migrated schema,
    DIR/load.mariadb.sql               record the run(s) in invoicegen_runs, and (PostgreSQL)
    DIR/load.sqlite.sql                move the id sequences past the loaded ids

Rows come from the same plan, generator and workers as ``seed`` (:mod:`.plan`,
:mod:`.generate`, :mod:`.workers`), encoded by :mod:`.encoders`; the bytes depend on the
options that shape the data and on the versions only, never on ``--workers`` or
``--batch-size``. Files are written under hidden temporary names and renamed when all are
complete, the manifest last: a folder without its manifest is not a finished export, and an
interrupted export removes its temporary files (a killed one leaves only those).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from invoicegen import interrupts, manifest
from invoicegen.errors import DiskFull, Interrupted, RefusedError, UsageError, WorkerDied
from invoicegen.seeding import encoders, generate, workers
from invoicegen.seeding.dataset import reconcile, recorded_options
from invoicegen.seeding.encoders import COLUMNS, NULLABLE, TABLES, FileFormat, sql_literal
from invoicegen.seeding.plan import (
    SHAPING_DEFAULTS,
    Batch,
    Plan,
    SeedPlan,
    batch_count,
    first_ids_at,
    generating_workers,
    plan_batches,
    worker_count,
)
from invoicegen.seeding.run import Progress
from invoicegen.settings import Shard

MANIFESTS = "manifests"
DIALECTS = ("postgresql", "mariadb", "sqlite")
LOAD_SCRIPTS = tuple(f"load.{dialect}.sql" for dialect in DIALECTS)
#: The version of the folder's layout and manifest, for readers.
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class ExportFile:
    """One finished file of the export: its path in the folder (``/``-separated)."""

    path: str
    table: str | None  # a data table, or None for a load script or the manifest
    rows: int | None
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "table": self.table,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class ExportResult:
    directory: str
    format: str
    plan: Plan
    first_user: int  # 0-based position of the part's first user tree
    users: int  # user trees in this part
    written: dict[str, int]
    files: list[ExportFile]  # data files, then load scripts
    manifest: str  # the manifest's path in the folder
    versions: dict[str, str]
    seconds: float
    workers: int
    batches: int
    load_scripts: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.written.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def manifest_document(self) -> dict[str, Any]:
        """What ``manifests/part-K-of-N.json`` holds: only what the data depends on, so
        the manifest too is the same to the byte for the same options."""
        plan = self.plan
        return {
            "invoicegen_export": LAYOUT_VERSION,
            "format": self.format,
            "seed": plan.seed,
            "as_of": plan.as_of.isoformat(),
            "since": plan.since.isoformat(),
            "users_total": plan.users,
            "first_user": self.first_user + 1,
            "users": self.users,
            "shard": str(plan.shard) if plan.shard else None,
            "options": recorded_options(plan),
            "versions": self.versions,
            "counts": self.written,
            "files": [file.to_json() for file in self.files],
            "load_scripts": self.load_scripts,
            "replay": " ".join(["invoicegen", *self.replay_args()]),
        }

    def replay_args(self) -> list[str]:
        """``invoicegen`` arguments that export this part again (into DIR)."""
        plan = self.plan
        args = ["export", "DIR", "--format", self.format, "--users", str(plan.users)]
        args += ["--seed", str(plan.seed), "--as-of", str(plan.as_of), "--since", str(plan.since)]
        for key in ("clients_per_user", "contracts_per_client", "invoices_per_contract"):
            args += [f"--{key.replace('_', '-')}", str(getattr(plan, key))]
        if plan.locale != SHAPING_DEFAULTS["locale"]:
            args += ["--locale", plan.locale]
        return args + (["--shard", str(plan.shard)] if plan.shard else [])

    def to_json(self) -> dict[str, Any]:
        """The export as ``invoicegen export --json`` prints it: the manifest, and how the
        run went."""
        return {
            "directory": self.directory,
            "manifest": self.manifest,
            **self.manifest_document(),
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "workers": self.workers,
            "batches": self.batches,
        }


@dataclass(frozen=True)
class Layout:
    """Where each file of one part of an export goes."""

    root: Path
    file: FileFormat
    index: int  # 0-based
    count: int

    def part(self, index: int) -> str:
        """``part-K-of-N`` of the part at ``index`` (from 0): K from 1, padded to N's width."""
        return f"part-{index + 1:0{len(str(self.count))}d}-of-{self.count}"

    def data_path(self, table: str, index: int | None = None) -> str:
        """A table's file of this part (or of the part at ``index``)."""
        return f"{table}/{self.part(self.index if index is None else index)}.{self.file.extension}"

    @property
    def manifest_path(self) -> str:
        return f"{MANIFESTS}/{self.part(self.index)}.json"

    def temporary(self, path: str) -> Path:
        folder, _, name = path.rpartition("/")
        return self.root / folder / f".{name}.{os.getpid()}.tmp"


def export(
    directory: str | os.PathLike[str],
    request: SeedPlan,
    *,
    format: str,
    force: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> ExportResult:
    """Write the dataset ``seed`` would write for ``request`` into the folder ``directory``
    as ``format`` files (csv, jsonl, sql, parquet); returns what was written.

    Refuses a folder that holds anything but the other shards of the same export, unless
    ``force`` (which replaces an earlier export's files, and never touches other files).
    A stop (``stop()`` true between batches, or a KeyboardInterrupt) removes the temporary
    files and raises :class:`Interrupted`.
    """
    file = encoders.file_format(format)
    if request.append:
        raise UsageError("an export is a whole dataset (or a shard of one), never an append")
    if request.shard is not None and (request.seed is None or request.as_of is None):
        raise UsageError(
            "a shard of an export needs --seed and --as-of, so that every shard draws the "
            "same dataset",
            option="--shard",
        )
    root = Path(directory)
    target = reconcile(request, [], 0, str(root))
    plan, positions = target.plan, target.positions
    shard = plan.shard or Shard(0, 1)
    layout = Layout(root, file, shard.index, shard.count)
    _prepare(layout, plan, force=force)
    writing = _Writing(layout, plan, positions)
    count = worker_count(plan)
    try:
        with generating_workers(plan) as pool:
            writing.write(pool, on_progress=on_progress, stop=stop)
        return writing.finish(count)
    except KeyboardInterrupt:
        if writing.renamed:
            raise Interrupted(
                f"interrupted: the export in {root} is not complete (it has no manifest); "
                "export again with --force"
            ) from None
        raise Interrupted(
            f"interrupted: nothing was exported to {root} (its temporary files are removed)"
        ) from None
    except BrokenProcessPool:
        raise WorkerDied(
            f"a generating worker process died (killed, or out of memory?): nothing was "
            f"exported to {root}"
        ) from None
    except OSError as exc:
        raise _os_error(exc, root) from None
    finally:
        writing.remove_temporary()


def _os_error(exc: OSError, root: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"the disk is full: nothing was exported to {root}")
    where = exc.filename or root
    return UsageError(f"cannot write {where}: {exc.strerror or exc}")


def _encoded_batch(
    plan: Plan, format: str, batch: Batch
) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """In a generating worker: a batch's rows per table, counted and encoded."""
    tables = generate.generate_batch(plan, batch)
    counts = tuple(len(rows) for rows in tables)
    return counts, encoders.encode_tables(encoders.FORMATS[format], tables)


def _never() -> bool:
    return False


class _Writing:
    """One part being written: its temporary files, then the finished ones."""

    def __init__(self, layout: Layout, plan: Plan, positions: range) -> None:
        self.layout = layout
        self.plan = plan
        self.positions = positions
        self.written = dict.fromkeys(TABLES, 0)
        self.temporary: dict[str, Path] = {}  # final path -> its temporary file
        self.renamed = 0
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def _open(self, path: str) -> Iterator[BinaryIO]:
        temporary = self.layout.temporary(path)
        temporary.parent.mkdir(parents=True, exist_ok=True)
        self.temporary[path] = temporary
        with open(temporary, "w+b") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())

    def write(
        self,
        pool: workers.Pool | None,
        *,
        on_progress: Callable[[Progress], None] | None,
        stop: Callable[[], bool] | None,
    ) -> None:
        """Generate and encode every batch (in the workers), and write them in order."""
        stop = stop or _never
        plan, layout = self.plan, self.layout
        first_ids = first_ids_at(plan, self.positions.start)
        batches = plan_batches(plan, self.positions, first_ids)
        with contextlib.ExitStack() as files:
            sinks = []
            for table in TABLES:
                sink = layout.file.sink(
                    table, files.enter_context(self._open(layout.data_path(table)))
                )
                files.callback(sink.abandon)  # before its file closes, however the block ends
                sinks.append(sink)
            generated = workers.ordered(pool, _encoded_batch, batches, plan, layout.file.name)
            users_done = 0
            with contextlib.closing(generated):  # stops the workers however the loop ends
                for batch, (counts, encoded) in generated:
                    if stop():
                        raise KeyboardInterrupt
                    for sink, table, rows, chunk in zip(
                        sinks, TABLES, counts, encoded, strict=True
                    ):
                        sink.write(chunk)
                        self.written[table] += rows
                    users_done += batch.size
                    if on_progress is not None:
                        progress = Progress(
                            users_done, len(self.positions), sum(self.written.values())
                        )
                        on_progress(progress)
            for sink in sinks:
                sink.close()

    def finish(self, count: int) -> ExportResult:
        """Checksum the data, write the load scripts and the manifest, then rename every file
        into place, the manifest last."""
        layout, plan = self.layout, self.plan
        files = [
            _described(path, self.temporary[path], table, self.written[table])
            for table in TABLES
            for path in [layout.data_path(table)]
        ]
        scripts: list[str] = []
        if layout.file.loadable:
            for dialect, name in zip(DIALECTS, LOAD_SCRIPTS, strict=True):
                with self._open(name) as stream:
                    stream.write(load_script(dialect, layout, plan, self._counts()).encode())
                scripts.append(name)
        result = ExportResult(
            directory=str(layout.root),
            format=layout.file.name,
            plan=plan,
            first_user=self.positions.start,
            users=len(self.positions),
            written=dict(self.written),
            files=files,
            manifest=layout.manifest_path,
            versions=manifest.versions(),
            seconds=time.perf_counter() - self.started,
            workers=count,
            batches=batch_count(plan, len(self.positions)),
            load_scripts=scripts,
        )
        with self._open(layout.manifest_path) as stream:
            document = json.dumps(result.manifest_document(), indent=2, ensure_ascii=False)
            stream.write((document + "\n").encode())
        try:  # a stop waits for the renames (microseconds); once all are done, it is too late
            with interrupts.deferred():
                for path in [*(f.path for f in files), *scripts, layout.manifest_path]:
                    os.replace(self.temporary.pop(path), layout.root / path)
                    self.renamed += 1
        except KeyboardInterrupt:
            if self.temporary:  # a second stop, part-way
                raise
        _sync_folders(layout.root)
        return result

    def _counts(self) -> dict[str, int] | None:
        """What the run record of the load scripts says was written: an unsharded export's
        counts; None for shards (every shard writes the same scripts, and knows only its
        own counts)."""
        return dict(self.written) if self.layout.count == 1 else None

    def remove_temporary(self) -> None:
        for temporary in self.temporary.values():
            with contextlib.suppress(OSError):
                temporary.unlink()
        self.temporary.clear()


def _described(path: str, file: Path, table: str | None, rows: int | None) -> ExportFile:
    with open(file, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return ExportFile(path, table, rows, file.stat().st_size, digest)


def _sync_folders(root: Path) -> None:
    """Make the renames durable (a folder's entries are flushed with the folder)."""
    for folder in [root, *(root / name for name in (*TABLES, MANIFESTS))]:
        with contextlib.suppress(OSError):
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


# --- the folder before writing --------------------------------------------------------------------


_OUR_FILE = re.compile(r"\.?part-(\d+)-of-(\d+)\.(\w+)(\.\d+\.tmp)?")
_OUR_SCRIPT = re.compile(r"\.?(load\.\w+\.sql)(\.\d+\.tmp)?")


def _ours(relative: str) -> bool:
    """Whether a file's path is one an export writes (finished or temporary)."""
    folder, _, name = relative.rpartition("/")
    if not folder:
        match = _OUR_SCRIPT.fullmatch(name)
        return match is not None and match.group(1) in LOAD_SCRIPTS
    return folder in (*TABLES, MANIFESTS) and bool(_OUR_FILE.fullmatch(name))


def _sibling(relative: str, layout: Layout, plan: Plan) -> bool:
    """A file (finished, or still being written) of another shard of the same export: same
    N, format and dataset. Shards may write into one folder at the same time."""
    if layout.count == 1 or not _ours(relative):
        return False
    folder, _, name = relative.rpartition("/")
    if not folder:
        return layout.file.loadable  # the load scripts: the same for every shard
    match = _OUR_FILE.fullmatch(name)
    assert match is not None
    if int(match.group(2)) != layout.count or int(match.group(1)) == layout.index + 1:
        return False
    if folder == MANIFESTS:
        finished = not match.group(4)
        return match.group(3) == "json" and (
            not finished or _same_dataset(layout.root / relative, layout, plan)
        )
    return match.group(3) == layout.file.extension


def _same_dataset(path: Path, layout: Layout, plan: Plan) -> bool:
    try:
        other = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    mine = {
        "format": layout.file.name,
        "seed": plan.seed,
        "as_of": plan.as_of.isoformat(),
        "users_total": plan.users,
        "options": recorded_options(plan),
        "versions": manifest.versions(),
    }
    return isinstance(other, dict) and all(other.get(k) == v for k, v in mine.items())


def _prepare(layout: Layout, plan: Plan, *, force: bool) -> None:
    """Make the folder ready: created if missing; refused when it holds anything but other
    shards of this export, unless ``force``: then an earlier export's files go (never a file
    an export does not write)."""
    root = layout.root
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a folder", option="DIR")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, root) from None
    present = sorted(
        path.relative_to(root).as_posix() for path in root.rglob("*") if not path.is_dir()
    )
    in_the_way = [p for p in present if not _sibling(p, layout, plan)]
    if not in_the_way:
        return
    if not force:
        shown = ", ".join(in_the_way[:3]) + (
            f" and {len(in_the_way) - 3} more" * (len(in_the_way) > 3)
        )
        raise RefusedError(
            f"{root} is not empty ({shown}); export into an empty or new folder, or pass "
            "--force to replace an earlier export there"
        )
    for relative in in_the_way:
        if _ours(relative):
            (root / relative).unlink()


# --- load scripts ---------------------------------------------------------------------------------

_NOW = {
    "postgresql": "(now() AT TIME ZONE 'UTC')",
    "mariadb": "UTC_TIMESTAMP()",
    "sqlite": "CURRENT_TIMESTAMP",
}
_RUN_COLUMNS = (
    "status, started_at, finished_at, seed, as_of, first_user, users, users_done, shard, "
    "options, versions, counts"
)


def _run_records(dialect: str, plan: Plan, count: int, counts: dict[str, int] | None) -> str:
    """INSERTs of the run(s) ``seed`` would have recorded: one per shard."""
    now = _NOW[dialect]
    shards = [Shard(index, count) for index in range(count)] if count > 1 else [None]
    options = json.dumps(recorded_options(plan), sort_keys=True)
    versions = json.dumps(manifest.versions(), sort_keys=True)
    recorded = json.dumps(counts, sort_keys=True) if counts is not None else None
    lines = []
    for shard in shards:
        positions = shard.positions(plan.users) if shard else range(plan.users)
        values = [
            "'done'",
            now,
            now,
            str(plan.seed),
            sql_literal(plan.as_of),
            str(positions.start),
            str(len(positions)),
            str(len(positions)),
            sql_literal(str(shard) if shard else None),
            sql_literal(options),
            sql_literal(versions),
            sql_literal(recorded),
        ]
        lines.append(f"INSERT INTO invoicegen_runs ({_RUN_COLUMNS}) VALUES ({', '.join(values)});")
    return "\n".join(lines) + "\n"


def _load_part(dialect: str, layout: Layout, table: str, path: str) -> str:
    columns = COLUMNS[table]
    if layout.file.name == "sql":
        command = {"postgresql": "\\ir", "mariadb": "source", "sqlite": ".read"}[dialect]
        return f"{command} {path}\n"
    listed = ", ".join(columns)
    if dialect == "postgresql":
        return f"\\copy {table} ({listed}) FROM '{path}' WITH (FORMAT csv, HEADER true)\n"
    nullable = NULLABLE[table]
    if dialect == "mariadb":
        fields = ", ".join(f"@{c}" if c in nullable else c for c in columns)
        sets = ", ".join(f"{c} = NULLIF(@{c}, '')" for c in nullable)
        return (
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4\n"
            "  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY ''\n"
            "  LINES TERMINATED BY '\\n' IGNORE 1 LINES\n"
            f"  ({fields})" + (f"\n  SET {sets}" if sets else "") + ";\n"
        )
    chosen = ", ".join(f"NULLIF({c}, '')" if c in nullable else c for c in columns)
    return (
        f".import --csv {path} invoicegen_import\n"
        f"INSERT INTO {table} ({listed}) SELECT {chosen} FROM invoicegen_import;\n"
        "DROP TABLE invoicegen_import;\n"
    )


#: How each load script is run, from inside the export's folder.
LOAD_COMMANDS = {
    "postgresql": "psql URL -f load.postgresql.sql",
    "mariadb": "mariadb --local-infile=1 DATABASE < load.mariadb.sql",
    "sqlite": "sqlite3 FILE.db < load.sqlite.sql",
}

_HEADER = {
    "postgresql": (
        f"-- cd DIR && {LOAD_COMMANDS['postgresql']}\n\\set ON_ERROR_STOP on\n"
        "SET client_encoding = 'UTF8';\nBEGIN;\n"
    ),
    "mariadb": f"-- cd DIR && {LOAD_COMMANDS['mariadb']}\nSET NAMES utf8mb4;\nSTART TRANSACTION;\n",
    "sqlite": f"-- cd DIR && {LOAD_COMMANDS['sqlite']}\n.bail on\nBEGIN;\n",
}


def load_script(dialect: str, layout: Layout, plan: Plan, counts: dict[str, int] | None) -> str:
    """The script that loads every part of the folder into an empty schema that
    ``invoicegen migrate`` made, in one transaction, run from inside the folder."""
    lines = [
        "-- Load this invoicegen export into an empty schema made by `invoicegen migrate`.\n",
        "-- Run it from inside the export's folder (its paths are relative):\n",
        _HEADER[dialect],
    ]
    for table in TABLES:
        for index in range(layout.count):
            lines.append(_load_part(dialect, layout, table, layout.data_path(table, index)))
    lines.append(_run_records(dialect, plan, layout.count, counts))
    if dialect == "postgresql":  # serial sequences do not follow explicit ids
        moves = "".join(
            f"  PERFORM setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false);\n"
            for table in TABLES
        )
        lines.append(f"DO $$\nBEGIN\n{moves}END\n$$;\n")
    lines.append("COMMIT;\n")
    return "".join(lines)
