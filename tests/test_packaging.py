"""The built wheel works on its own: migrations inside it, CLI on PATH, run outside the repo;
and the README's Try-it command, run as written in a copy of the clone, leaves a shell in which
the later examples and the printed replay line run as written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_seeds(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        check=True,
    )
    wheel = next(dist.glob("invoicegen-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    subprocess.run([bin_dir / "pip", "install", "-q", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICEGEN_")}
    done = subprocess.run(
        [bin_dir / "invoicegen", "seed", "--users", "5", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["users"] == 5
    assert (work / "invoicegen.db").exists()
    stats = subprocess.run(
        [bin_dir / "invoicegen", "stats", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(stats.stdout)["counts"]["users"] == 5
    # No driver in this venv: the hint installs the package's extra, as from an index.
    missing = subprocess.run(
        [bin_dir / "invoicegen", "migrate", "-d", "postgresql://u@127.0.0.1:1/x"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 4
    assert missing.stderr.rstrip().endswith("run: pip install 'invoicegen[postgres]'")
    listing = subprocess.run(
        [
            bin_dir / "python",
            "-c",
            "import importlib.resources as r; "
            "print(sorted(p.name for p in r.files('invoicegen.migrations').iterdir()))",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "env.py" in listing.stdout and "script.py.mako" in listing.stdout


def _readme_block(marker: str) -> str:
    text = (REPO / "README.md").read_text("utf-8")
    block = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]
    return "\n".join(line for line in block.strip().splitlines() if not line.startswith("```"))


def _copy_of_the_clone(target: Path) -> Path:
    """The files a fresh clone of this working tree has (tracked, and new ones not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.mark.slow
def test_the_readme_try_it_leaves_a_shell_that_runs_the_later_examples(tmp_path: Path) -> None:
    clone = _copy_of_the_clone(tmp_path / "invoicegen")
    try_it = _readme_block("try-it")
    assert "invoicegen seed" in try_it
    # One shell, as the reader's: the Try-it command as written (its output kept to read the
    # replay line from), then later examples as the README writes them.
    script = f"""set -e
{{ {try_it}
}} > try-it.out 2>&1 || {{ cat try-it.out; exit 1; }}
cat try-it.out
command -v invoicegen
invoicegen stats --check
invoicegen migrate -d postgresql://u@127.0.0.1:1/x || true
replay=$(sed -n '/to replay this run:/{{n;p}}' try-it.out)
mkdir replayed && cd replayed && eval "$replay" && invoicegen stats --json
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOICEGEN_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix)
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"{clone}/.venv/bin/invoicegen" in out  # the activated venv's, not another
    assert "void invoices with a payment date                     ok" in out
    # The venv has no PostgreSQL driver; installed from the clone, the hint names it ('.').
    assert "run: pip install '.[postgres]'" in done.stderr
    replayed = json.loads(out[out.rindex("\n{\n") :])
    seeded = (clone / "invoicegen.db").exists() and json.loads(
        subprocess.run(
            [clone / ".venv/bin/invoicegen", "stats", "--json"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert seeded and replayed["counts"] == seeded["counts"]
    assert replayed["counts"]["users"] == 50
