"""What a person sees, on a real pseudo-terminal and in a pipe: no escape sequences where none
are wanted (NO_COLOR, TERM=dumb, pipes), progress that is never animated off a terminal, and
output that fits 60, 80 and 120 columns without cutting a value or ending a line in spaces."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest
import sqlalchemy as sa

AS_OF = "2026-11-01"
SEED = "9122794728361509123"  # as long as a seed gets (19 digits): it must never be cut


@dataclass
class Run:
    code: int
    text: str  # stdout and stderr as the terminal shows them (one stream on a pty)
    raw: bytes
    stderr: str = ""


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICEGEN_")}
    for name in ("NO_COLOR", "FORCE_COLOR", "PY_COLORS", "TTY_COMPATIBLE", "COLUMNS"):
        env.pop(name, None)
    env["TERM"] = "xterm-256color"
    return env | extra


def in_terminal(
    *args: str, env: dict[str, str] | None = None, columns: int = 80, lines: int = 40
) -> Run:
    """``python -m invoicegen ARGS`` on a real pseudo-terminal ``columns`` wide."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "invoicegen", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=_env(env or {}),
    )
    os.close(terminal)
    chunks = []
    try:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    raw = b"".join(chunks)
    return Run(code, raw.decode("utf-8", "replace").replace("\r\n", "\n"), raw)


def piped(*args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "invoicegen", *args],
        capture_output=True,
        env=_env(env or {}),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    raw = done.stdout + done.stderr
    return Run(done.returncode, done.stdout.decode(), raw, done.stderr.decode())


def seed_args(url: str, *more: str) -> list[str]:
    return ["seed", "-d", url, "--users", "60", "--batch-size", "10", "--workers", "1",
            "--seed", SEED, "--as-of", AS_OF, *more]  # fmt: skip


# --- item: no escape sequences where none are wanted ---------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "dumb"])
def test_no_escape_sequence_on_a_terminal_without_them(
    sqlite_url: str, env: dict[str, str]
) -> None:
    runs = [
        in_terminal(*seed_args(sqlite_url), env=env),
        in_terminal("stats", "-d", sqlite_url, env=env),
        in_terminal("stats", "--check", "-d", sqlite_url, env=env),
        in_terminal("migrate", "-d", sqlite_url, "--verbose", env=env),
        in_terminal("reset", "--dry-run", "-d", sqlite_url, env=env),
    ]
    for run in runs:
        assert run.code == 0, run.text
        assert b"\x1b" not in run.raw, run.raw[:400]
    # a terminal still shows progress, as plain lines: the last says all users are written
    assert "seeding 60/60 users" in runs[0].text
    # and the steps of stats and stats --check, one plain line each
    assert "stats 1/7 · schema and runs\n" in runs[1].text
    assert "stats 7/7 · top clients\n" in runs[1].text
    assert "stats --check 1/7 · users and their clients\n" in runs[2].text
    assert "stats --check 7/7 · user emails\n" in runs[2].text


def test_a_terminal_that_takes_escape_sequences_gets_the_live_bar(sqlite_url: str) -> None:
    """The counterpart, so the tests above can fail: the same run, animated."""
    run = in_terminal(*seed_args(sqlite_url))
    assert run.code == 0, run.text
    assert b"\x1b[?25l" in run.raw  # Rich hides the cursor while the bar is drawn
    assert "seeding 60/60 users" not in run.text.split("\x1b")[-1]  # the bar is gone at the end
    # styled, and still no line ends in spaces (nor in spaces between style codes)
    shown = in_terminal("stats", "-d", sqlite_url, columns=100)
    assert b"\x1b[" in shown.raw
    # a spinner drew each step on one line, then erased it: no step is left as a line
    assert b"stats 7/7 \xc2\xb7 top clients" in shown.raw
    assert "stats 7/7" not in shown.text.split("\x1b")[-1]
    assert "\nstats 1/7" not in shown.text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown.text)
    assert SEED in plain
    assert [line for line in plain.splitlines() if line != line.rstrip()] == []


def test_a_pipe_gets_no_escape_sequence_and_no_progress_unless_asked(sqlite_url: str) -> None:
    quiet = piped(*seed_args(sqlite_url))
    assert quiet.code == 0, quiet.raw
    assert b"\x1b" not in quiet.raw
    assert "seeding" not in quiet.stderr

    for args in (["stats"], ["stats", "--check"]):  # nor any step of stats in a pipe
        shown = piped(*args, "-d", sqlite_url)
        assert shown.code == 0, shown.raw
        assert b"\x1b" not in shown.raw and " 1/" not in shown.stderr

    asked = piped(*seed_args(sqlite_url, "--append", "--progress", "plain"))
    assert asked.code == 0, asked.raw
    assert b"\x1b" not in asked.raw and "\r" not in asked.stderr
    lines = [line for line in asked.stderr.splitlines() if line.startswith("seeding ")]
    # the first batch at once, then at most one line every few seconds, and the last
    assert lines and lines[-1].startswith("seeding 60/60 users · ETA 0:00:00")
    assert len(lines) < 60 // 10


def test_a_bar_asked_for_in_a_pipe_is_plain_lines(sqlite_url: str) -> None:
    run = piped(*seed_args(sqlite_url, "--progress", "bar"))
    assert run.code == 0, run.raw
    assert b"\x1b" not in run.raw
    assert "seeding 60/60 users" in run.stderr


_PLAIN_LINE = re.compile(
    r"seeding (?P<done>[\d,]+)/(?P<total>[\d,]+) users · ETA (?P<eta>-|\d+:\d\d:\d\d) · "
    r"[\d,]+ rows · [\d,]+ rows/s · \d+:\d\d:\d\d elapsed"
)


def test_plain_progress_gives_no_eta_before_it_can_be_estimated(tmp_path: Path) -> None:
    """The first line came after the first batch, a tenth of the others and made while the
    workers start: its ETA, from that batch's rate, said 0:25:37 for a 40-second seed of 60,000
    users. Now the first line has none."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    run = piped("seed", "-d", url, "-n", "3000", "--seed", SEED, "--as-of", AS_OF,
                "--progress", "plain")  # fmt: skip
    assert run.code == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("seeding ")]
    assert len(lines) >= 2, run.stderr
    matches = [_PLAIN_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    first, last = matches[0], matches[-1]
    assert first is not None and last is not None
    assert first["total"] == last["total"] == last["done"] == "3,000"
    assert int(first["done"].replace(",", "")) < 3000
    assert first["eta"] == "-", lines[0]
    assert last["eta"] == "0:00:00", lines[-1]


def test_the_eta_comes_from_the_recent_batches_not_the_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second of start-up (imports, connecting, migrating, the workers warming up), then a
    small first batch and batches of 1,000 users every 0.1 s: 9,000 users are left after the
    second, a second's work. Counted from the start, the ETA said 9 s."""
    from invoicegen import console
    from invoicegen.seeding import Progress

    monkeypatch.setattr(console, "PLAIN_PROGRESS_EVERY", 0.0)  # a line per batch
    console.configure()
    total, done = 10_100, 0
    with console.seed_progress(total, mode="plain") as on_progress:
        time.sleep(1.0)
        for batch in [100] + [1000] * 10:
            done += batch
            on_progress(Progress(done, total, done * 20))
            time.sleep(0.1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("seeding")]
    etas = [match["eta"] for line in lines if (match := _PLAIN_LINE.fullmatch(line))]
    assert len(etas) == 11, lines
    assert etas[0] == "-"
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (e.split(":") for e in etas[1:])]
    assert 1 <= seconds[0] <= 3, lines  # 9,000 users at 10,000 a second: one second, rounded up
    assert seconds == sorted(seconds, reverse=True) and seconds[-1] == 0, lines


def test_an_unknown_progress_mode_is_a_usage_error(sqlite_url: str) -> None:
    run = piped(*seed_args(sqlite_url, "--progress", "fancy"))
    assert run.code == 2
    assert run.stderr.strip().splitlines() == [
        "error: --progress: expected bar, plain or none, got 'fancy'"  # as every option says it
    ]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists() or "Seeded" not in run.text


# --- item: output that fits 60, 80 and 120 columns, and pipes ------------------------------------


def _assert_whole(text: str, *values: str) -> None:
    for value in values:
        assert value in text, f"{value!r} is not shown whole in:\n{text}"
    assert "…" not in text, text
    trailing = [line for line in text.splitlines() if line != line.rstrip()]
    assert not trailing, f"lines ending in spaces: {trailing!r}"


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 80, 120])
def test_every_command_fits_without_cutting_a_value(sqlite_url: str, columns: int) -> None:
    """Piped (a CI log) at a given COLUMNS: the seed, the as-of, the database, the totals and the
    replay line are whole; no cell ends in `…`; no line ends in spaces."""
    env = {"COLUMNS": str(columns)}
    database = sqlite_url
    seeded = piped(*seed_args(sqlite_url, "--verbose"), env=env)
    assert seeded.code == 0, seeded.raw
    total = next(line.split()[-2] for line in seeded.text.splitlines() if "total" in line)
    replay = next(
        line.strip()
        for line in seeded.text.splitlines()
        if line.strip().startswith("invoicegen seed")
    )
    assert f"--seed {SEED} --as-of {AS_OF}" in replay
    _assert_whole(
        seeded.text, f"into {database}", f"seed {SEED}, as of {AS_OF}", f"{total} rows in"
    )
    _assert_whole(seeded.stderr, database, "users", "60")  # --verbose: the settings table

    stats = piped("stats", "-d", database, env=env)
    assert stats.code == 0, stats.raw
    _assert_whole(stats.text, database, SEED, AS_OF, total, "60/60", "top 10 clients")

    check = piped("stats", "--check", "-d", database, env=env)
    assert check.code == 0, check.raw
    _assert_whole(check.text, f"checking {database}", "duplicate user emails")

    dry = piped("reset", "--dry-run", "-d", database, env=env)
    assert dry.code == 0, dry.raw
    _assert_whole(dry.text, f"Would drop from {database}", "invoicegen_alembic_version", "60")
    _assert_whole(dry.stderr, "target: ")

    migrated = piped("migrate", "-d", database, "--verbose", env=env)
    assert migrated.code == 0, migrated.raw
    _assert_whole(migrated.text, f"schema of {database} is at revision")
    _assert_whole(migrated.stderr, database, "lock_timeout")


def test_company_names_are_whole_at_120_columns(sqlite_url: str) -> None:
    assert piped(*seed_args(sqlite_url)).code == 0
    import sqlalchemy as sa

    with sa.create_engine(sqlite_url).connect() as connection:
        companies = [
            row[0] for row in connection.execute(sa.text("SELECT company_name FROM clients"))
        ]
    shown = piped("stats", "-d", sqlite_url, env={"COLUMNS": "120"})
    top = shown.text.split("top 10 clients", 1)[1].split("billing as of", 1)[0]
    assert "…" not in top
    assert sum(name in top for name in companies) >= 10  # each top client's company, whole


@pytest.mark.slow
@pytest.mark.parametrize("columns", [60, 80])
def test_the_progress_bar_keeps_users_and_eta_whole(sqlite_url: str, columns: int) -> None:
    run = in_terminal(*seed_args(sqlite_url), columns=columns)
    assert run.code == 0, run.text
    import re

    drawn = re.findall(r"(\d+)/60 users · ETA (\d:\d\d:\d\d|-)", run.text)
    assert drawn, run.text[:600]
    assert "…" not in run.text
    frames = [re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", f) for f in run.text.split("\x1b[2K")]
    bars = [frame.strip("\r\n") for frame in frames if frame.startswith("seeding ")]
    assert bars and all(len(bar) < columns for bar in bars), bars


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STEP = re.compile(r"stats(?: --check)? \d+/\d+")


def _spinner_frames(run: Run, columns: int, lines: int) -> tuple[list[str], list[str], list[str]]:
    """What a terminal ``columns`` x ``lines`` showed: each frame of the spinner (the screen
    just before the next one is drawn, its lines joined by one space), the lines each frame
    wrote (escape sequences left out), and the screen at the end."""
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    shown, written = [], []
    # Rich starts each redraw with CR and an erase of the line (then goes up the frame's lines)
    pieces = run.raw.split(b"\r\x1b[2K")
    for index, piece in enumerate(pieces):
        stream.feed((b"\r\x1b[2K" if index else b"") + piece)
        frame = piece.split(b"\x1b[?25h", 1)[0].decode("utf-8", "replace")  # to the spinner's end
        if _STEP.search(frame):
            shown.append(" ".join(" ".join(screen.display).split()))
            written += _ESCAPE.sub("", frame).replace("\r", "").split("\n")
    return shown, written, [line.rstrip() for line in screen.display]


@pytest.mark.parametrize("columns", [60, 80])
def test_the_stats_spinner_shows_each_step_whole_and_leaves_nothing(
    sqlite_url: str, columns: int
) -> None:
    """At 60 columns the spinner cut `invoices by month, status and currency` (and at 80 the
    examples of a failed check) to the line's width: the name is folded onto the next line
    instead, no line is as wide as the terminal, and the spinner is gone at the end."""
    from invoicegen.stats import COLLECT_STEPS

    assert piped(*seed_args(sqlite_url)).code == 0
    with sa.create_engine(sqlite_url).begin() as connection:  # fails one check: its examples
        connection.execute(
            sa.text("UPDATE invoices SET number = 'X' || number WHERE id = "
                    "(SELECT min(id) FROM invoices WHERE number IS NOT NULL)")
        )  # fmt: skip
    lines = 300  # the whole output on the screen, so the end shows what is left
    expected = {
        ("stats",): [f"stats {n}/7 · {name}" for n, name in enumerate(COLLECT_STEPS, 1)],
        ("stats", "--check"): [
            "stats --check 1/7 · users and their clients",
            "stats --check 8/8 · examples of invoice numbers not INV-<user>-<n> in issue order",
        ],
    }
    for args, steps in expected.items():
        run = in_terminal(*args, "-d", sqlite_url, columns=columns, lines=lines)
        assert run.code in (0, 7), run.text
        shown, written, end = _spinner_frames(run, columns, lines)
        assert shown, run.raw[:400]
        for step in steps:
            assert any(step in frame for frame in shown), (step, shown)
        assert not any("…" in frame for frame in shown), shown
        assert written and all(len(line) < columns for line in written), written
        assert not any(_STEP.search(line) for line in end), end
        heading = "checking sqlite:///" if "--check" in args else "sqlite:///"
        assert end[0].startswith(heading), end[:3]


def test_the_reset_prompt_has_no_empty_parentheses(sqlite_url: str) -> None:
    assert piped(*seed_args(sqlite_url)).code == 0
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "invoicegen", "reset", "-d", sqlite_url],
        stdin=terminal, stdout=terminal, stderr=terminal, env=_env({"NO_COLOR": "1"}),
    )  # fmt: skip
    os.close(terminal)
    seen = b""
    try:
        while b"to confirm" not in seen:
            seen += os.read(controller, 4096)
        os.write(controller, b"wrong\n")
        assert process.wait(timeout=60) == 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    prompt = seen.decode().splitlines()[-1]
    assert "()" not in prompt and prompt.rstrip().endswith("to confirm:"), prompt


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize(
    "env", [{}, {"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["tty", "NO_COLOR", "dumb"]
)
def test_every_help_fits_the_terminal_whole(columns: int, env: dict[str, str]) -> None:
    """Each command's --help on a terminal: every option's name and environment variable whole
    (not cut with `…`), no line wider than the terminal (but the example's) or ending in spaces,
    and no escape
    sequence with NO_COLOR or TERM=dumb."""
    from invoicegen import settings
    from tests.readme import commands

    for command, options in commands().items():
        args = [command] if command else []
        run = in_terminal(*args, "--help", env=env, columns=columns)
        assert run.code == 0, run.text
        if env:
            assert b"\x1b" not in run.raw, (command, run.raw[:300])
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.text)
        lines = text.splitlines()
        assert "…" not in text, (command, text)
        # the example is a command line, kept whole on one line (as the replay line is)
        assert all(len(line) <= columns or "Example: " in line for line in lines), text
        assert all(line == line.rstrip() for line in lines), (command, text)
        words = set(text.replace("[", " ").replace("]", " ").replace(",", " ").split())
        folded = "".join(text.split())  # a word longer than the help's column, folded
        for option in options:
            assert option in words, (command, option, text)
            key = option[2:].replace("-", "_")
            if key in settings.OPTIONS and command:
                # whole from 80 columns; at 60, the longest names are folded, never cut
                shown = words if columns >= 80 else folded
                assert settings.env_var(key) in shown, (command, option, text)


def test_a_dumb_terminal_gets_its_own_width(sqlite_url: str) -> None:
    """Rich takes TERM=dumb for 80 columns whatever the terminal says: at 60 columns `stats`
    drew its charts side by side, 77 wide. A dumb terminal is laid out as NO_COLOR's is."""
    assert piped(*seed_args(sqlite_url)).code == 0
    dumb = in_terminal("stats", "-d", sqlite_url, env={"TERM": "dumb"}, columns=60)
    plain = in_terminal("stats", "-d", sqlite_url, env={"NO_COLOR": "1"}, columns=60)
    assert dumb.code == plain.code == 0, dumb.text
    assert b"\x1b" not in dumb.raw
    assert "contracts per client" in dumb.text
    assert not re.search(r"clients per user +contracts per client", dumb.text), dumb.text
    widest = [max(len(line) for line in run.text.splitlines()) for run in (dumb, plain)]
    assert widest[0] == widest[1], widest
