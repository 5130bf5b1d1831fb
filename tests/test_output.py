"""What a person sees, on a real pseudo-terminal and in a pipe: no escape sequences where none
are wanted (NO_COLOR, TERM=dumb, pipes), progress that is never animated off a terminal, and
output that fits 60, 80 and 120 columns without cutting a value or ending a line in spaces."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def in_terminal(*args: str, env: dict[str, str] | None = None, columns: int = 80) -> Run:
    """``python -m invoicegen ARGS`` on a real pseudo-terminal ``columns`` wide."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
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


def test_a_terminal_that_takes_escape_sequences_gets_the_live_bar(sqlite_url: str) -> None:
    """The counterpart, so the tests above can fail: the same run, animated."""
    run = in_terminal(*seed_args(sqlite_url))
    assert run.code == 0, run.text
    assert b"\x1b[?25l" in run.raw  # Rich hides the cursor while the bar is drawn
    assert "seeding 60/60 users" not in run.text.split("\x1b")[-1]  # the bar is gone at the end


def test_a_pipe_gets_no_escape_sequence_and_no_progress_unless_asked(sqlite_url: str) -> None:
    quiet = piped(*seed_args(sqlite_url))
    assert quiet.code == 0, quiet.raw
    assert b"\x1b" not in quiet.raw
    assert "seeding" not in quiet.stderr

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


def test_an_unknown_progress_mode_is_a_usage_error(sqlite_url: str) -> None:
    run = piped(*seed_args(sqlite_url, "--progress", "fancy"))
    assert run.code == 2
    assert run.stderr.strip().splitlines() == [
        "error: --progress must be bar, plain or none, not 'fancy'"
    ]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists() or "Seeded" not in run.text
