"""The built wheel works on its own: migrations inside it, CLI on PATH, run outside the repo."""

from __future__ import annotations

import json
import os
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
