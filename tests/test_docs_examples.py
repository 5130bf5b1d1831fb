"""The README's guide to the factories: every code block in it runs, so it cannot drift.

Each ``<!-- example: NAME.py -->`` block is a test module; they run with the plugin on each of
the three databases. The ``<!-- ci-example -->`` job's install line, URL and pytest command are
checked and then used to run the same examples on PostgreSQL under pytest-xdist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import fresh_database

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.usefixtures("plugin_environment")

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE_TITLE = "## Using the factories in your tests"
EXAMPLE = re.compile(r"<!-- example: (\w+\.py) -->\n```python\n(.*?)```", re.DOTALL)


def _guide() -> str:
    text = README.read_text("utf-8")
    start = text.index(GUIDE_TITLE)
    end = text.find("\n## ", start + len(GUIDE_TITLE))
    return text[start : end if end != -1 else len(text)]


def _examples() -> dict[str, str]:
    return dict(EXAMPLE.findall(_guide()))


def _test_count(examples: dict[str, str]) -> int:
    return sum(len(re.findall(r"^def test_", code, re.MULTILINE)) for code in examples.values())


def _ci_job() -> str:
    match = re.search(r"<!-- ci-example -->\n```yaml\n(.*?)```", _guide(), re.DOTALL)
    assert match, "the guide has no <!-- ci-example --> yaml block"
    return match.group(1)


def test_every_python_block_in_the_guide_is_an_executed_example() -> None:
    examples = _examples()
    assert _guide().count("```python") == len(examples)
    assert {"test_invoices.py", "test_relationships.py", "test_application_code.py"} <= set(
        examples
    )
    assert _test_count(examples) >= 10


def test_the_guides_examples_pass(pytester: pytest.Pytester, database_url: str) -> None:
    examples = _examples()
    pytester.makepyfile(**{name.removesuffix(".py"): code for name, code in examples.items()})
    result = pytester.runpytest("-p", "no:cacheprovider", "--invoicegen-db-url", database_url)
    result.assert_outcomes(passed=_test_count(examples))


def test_the_ci_example_installs_what_its_command_needs() -> None:
    job = _ci_job()
    install = re.search(r"- run: pip install (.*)", job)
    command = re.search(r"- run: (pytest.*)", job)
    url = re.search(r"INVOICEGEN_TEST_DATABASE_URL: (\S+)", job)
    assert install and command and url
    packages = shlex.split(install.group(1))
    assert "invoicegen[postgres]" in packages and "pytest" in packages
    if "-n" in shlex.split(command.group(1)):
        assert "pytest-xdist" in packages
    service_url = sa.make_url(url.group(1))
    assert service_url.get_backend_name() == "postgresql"
    assert f'"{service_url.port}:5432"' in job  # the port the service publishes


@pytest.mark.slow
@pytest.mark.servers
def test_the_ci_examples_command_runs_the_examples_on_postgresql(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    command = re.search(r"- run: (pytest.*)", _ci_job())
    assert command
    examples = _examples()
    pytester.makepyfile(**{name.removesuffix(".py"): code for name, code in examples.items()})
    for url in fresh_database("postgresql", tmp_path):  # stands for the job's service database
        monkeypatch.setenv("INVOICEGEN_TEST_DATABASE_URL", url)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", *shlex.split(command.group(1))[1:]
        )
        result.assert_outcomes(passed=_test_count(examples))
        result.stdout.fnmatch_lines(["*created: * workers*"])
