"""Settings from files and profiles: precedence, sources, and the password warning.

Driven through the CLI in a temporary project folder (``monkeypatch.chdir``), plus the library's
``settings.resolve`` where only the resolution itself is under test.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from invoicegen import settings
from invoicegen.cli import app
from invoicegen.errors import UsageError
from invoicegen.seeding import SeedPlan
from invoicegen.settings import CountMix

runner = CliRunner()

PYPROJECT = """\
[project]
name = "host-app"

[tool.invoicegen]
users = 3
clients_per_user = "1"
locale = "de_DE"

[tool.invoicegen.profiles.demo]
users = 4
clients_per_user = [2, 2]
contracts_per_client = "1"
invoices_per_contract = "1-2"
seed = 7
as_of = 2025-06-30
batch_size = 2

[tool.invoicegen.profiles.load]
users = 1000
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current directory, with no INVOICEGEN_* in the way."""
    monkeypatch.chdir(tmp_path)
    for key in [*settings.OPTIONS, "profile"]:
        monkeypatch.delenv(settings.ENV_PREFIX + key.upper(), raising=False)
    return tmp_path


def seed_json(*args: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["seed", "--json", "--workers", "1", *args], env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def verbose_sources(*args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """setting -> the source `--verbose` names for it (the table on stderr)."""
    result = runner.invoke(app, ["seed", "--json", "--verbose", *args], env=env)
    assert result.exit_code == 0, result.stderr
    rows = {}
    for line in result.stderr.splitlines():
        parts = line.split(maxsplit=1)
        if parts and parts[0] in settings.OPTIONS:
            rows[parts[0]] = parts[1].strip()
    return rows


def test_the_file_section_applies_without_a_profile(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    data = seed_json()
    assert data["counts"]["users"] == 3
    assert data["counts"]["clients"] == 3  # clients_per_user = "1"
    assert (project / "invoicegen.db").exists()


def test_a_profile_overrides_the_file_and_sets_every_kind_of_value(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    data = seed_json("--profile", "demo")
    assert data["counts"]["users"] == 4
    assert data["counts"]["clients"] == 8  # [2, 2] from TOML as a range
    assert data["counts"]["contracts"] == 8
    assert data["seed"] == 7
    assert data["as_of"] == "2025-06-30"  # a TOML date
    assert data["batches"] == 2  # batch_size = 2


def test_precedence_command_line_then_environment_then_profile_then_file(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    env = {"INVOICEGEN_USERS": "5", "INVOICEGEN_SEED": "9"}
    sources = verbose_sources("--profile", "demo", "--users", "6", env=env)
    assert sources["users"].startswith("6") and sources["users"].endswith("command line")
    assert sources["seed"].startswith("9") and "environment INVOICEGEN_SEED" in sources["seed"]
    assert "profile demo in pyproject.toml" in sources["batch_size"]
    assert sources["locale"].startswith("de_DE") and "[tool.invoicegen]" in sources["locale"]
    assert "profile" not in sources["locale"]
    assert sources["workers"].endswith("default")


def test_precedence_is_what_seeding_uses(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    assert seed_json("--profile", "demo", env={"INVOICEGEN_USERS": "5"})["counts"]["users"] == 5
    (project / "invoicegen.db").unlink()
    data = seed_json("--profile", "demo", "-n", "6", env={"INVOICEGEN_USERS": "5"})
    assert data["counts"]["users"] == 6


def test_the_profile_can_come_from_the_environment(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    assert seed_json(env={"INVOICEGEN_PROFILE": "demo"})["seed"] == 7


def test_invoicegen_toml_holds_settings_at_its_top_level(project: Path) -> None:
    (project / "invoicegen.toml").write_text(
        'users = 2\n[profiles.ci]\nusers = 1\nclients_per_user = "3"\n'
    )
    assert seed_json()["counts"]["users"] == 2
    (project / "invoicegen.db").unlink()
    data = seed_json("--profile", "ci")
    assert data["counts"] == {**data["counts"], "users": 1, "clients": 3}


def test_invoicegen_toml_wins_over_pyproject_with_a_warning(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "invoicegen.toml").write_text("users = 2\n")
    result = runner.invoke(app, ["seed", "--json"])
    assert json.loads(result.stdout)["counts"]["users"] == 2
    assert "warning: pyproject.toml [tool.invoicegen] is ignored" in result.stderr


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_an_unknown_profile_names_the_known_ones(project: Path) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    line = _error_line(runner.invoke(app, ["seed", "--profile", "dmeo"]))
    assert "'dmeo'" in line and line.endswith("; it has demo, load"), line
    assert not (project / "invoicegen.db").exists()


def test_a_profile_without_a_settings_file_is_a_usage_error(project: Path) -> None:
    line = _error_line(runner.invoke(app, ["stats", "--profile", "demo"]))
    assert line.endswith(
        "--profile: no profile 'demo': no [tool.invoicegen] in a pyproject.toml, nor an "
        "invoicegen.toml, here or above"  # and no "(known: none)" after it
    ), line


def test_a_bad_value_in_a_profile_says_where_it_is(project: Path) -> None:
    (project / "invoicegen.toml").write_text('[profiles.bad]\ninvoices_per_contract = "5-1"\n')
    line = _error_line(runner.invoke(app, ["seed", "--profile", "bad"]))
    assert "profile bad in invoicegen.toml" in line and "5-1" in line


def test_a_misspelt_setting_in_the_file_is_refused(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.invoicegen]\nuser = 3\n")
    line = _error_line(runner.invoke(app, ["seed"]))
    assert "unknown setting(s) user" in line


def test_a_password_in_a_file_warns_and_is_never_shown(project: Path) -> None:
    url = f"sqlite:///{project / 'file.db'}"
    (project / "pyproject.toml").write_text(
        f'[tool.invoicegen.profiles.remote]\ndatabase_url = "{url}"\n'
        '[tool.invoicegen.profiles.secret]\ndatabase_url = "postgresql://app:hunter2@127.0.0.1:1/x"\n'
    )
    quiet = runner.invoke(app, ["seed", "-n", "1", "--json", "--profile", "remote"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    result = runner.invoke(app, ["stats", "--profile", "secret"])
    assert "warning: the database URL in pyproject.toml" in result.stderr
    assert "INVOICEGEN_DATABASE_URL" in result.stderr
    assert "hunter2" not in result.output


def test_a_password_in_the_environment_does_not_warn(project: Path) -> None:
    env = {"INVOICEGEN_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/x"}
    result = runner.invoke(app, ["stats"], env=env)
    assert result.exit_code == 4
    assert "warning" not in result.stderr and "hunter2" not in result.output


def test_verbose_shows_the_url_without_its_password(project: Path) -> None:
    env = {"INVOICEGEN_DATABASE_URL": "postgresql://app:hunter2@127.0.0.1:1/x"}
    result = runner.invoke(app, ["stats", "--verbose"], env=env)
    assert "postgresql://app:***@127.0.0.1:1/x" in result.stderr
    assert "hunter2" not in result.output


def test_resolve_reports_each_source(tmp_path: Path) -> None:
    (tmp_path / "invoicegen.toml").write_text(
        'locale = "fr_FR"\nseed = 1\n[profiles.p]\nseed = 2\nas_of = "2024-02-29"\n'
    )
    resolved = settings.resolve(
        {"users": "8"}, profile="p", cwd=tmp_path, environ={"INVOICEGEN_BATCH_SIZE": "10"}
    )
    assert resolved.values["users"] == 8 and resolved.sources["users"] == "command line"
    assert resolved.batch_size == 10
    assert resolved.sources["batch_size"] == "environment INVOICEGEN_BATCH_SIZE"
    assert (resolved.seed, resolved.sources["seed"]) == (2, "profile p in invoicegen.toml")
    assert resolved.as_of == dt.date(2024, 2, 29)
    assert (resolved.locale, resolved.sources["locale"]) == ("fr_FR", "invoicegen.toml")
    assert resolved.clients_per_user == CountMix.range(1, 3)
    assert resolved.sources["clients_per_user"] == "default"


def test_resolve_only_the_keys_asked_for(tmp_path: Path) -> None:
    (tmp_path / "invoicegen.toml").write_text('locale = "nowhere"\n')
    resolved = settings.resolve({}, keys=["database_url"], cwd=tmp_path, environ={})
    assert set(resolved.values) == {"database_url"}
    with pytest.raises(UsageError, match="invoicegen.toml: --locale"):
        settings.resolve({}, cwd=tmp_path, environ={})


# --- weighted mixes of counts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1-3:80,4-20:15,21-100:5", "1-3:80,4-20:15,21-100:5"),
        (" 1-3 : 80 , 21-30:20 ", "1-3:80,21-30:20"),
        ("0-2:10,3:90", "0-2:10,3:90"),  # 0 is a count like any other
        ("1-3:7", "1-3"),  # one part: its weight does not matter
        ("2-4", "2-4"),
        ("5", "5"),
        (5, "5"),
        ([2, 4], "2-4"),
    ],
)
def test_a_count_mix_reads_back_from_its_canonical_text(text: object, canonical: str) -> None:
    mix = CountMix.parse(text, name="--clients-per-user")  # type: ignore[arg-type]
    assert str(mix) == canonical
    assert CountMix.parse(str(mix)) == mix


def test_mixes_are_equal_when_their_shares_are() -> None:
    assert CountMix.parse("1-3:8,4-9:2") == CountMix.parse("1-3:80,4-9:20")
    assert CountMix.parse("1-3:8,4-9:2") != CountMix.parse("1-3:8,4-9:3")
    assert CountMix.parse("1-3:8,4-9:2") != CountMix.parse("4-9:2,1-3:8")  # the order draws
    assert CountMix.parse("1-3:9") == CountMix.range(1, 3)


BAD_MIXES = [
    "1-3:0",
    "1-3:-1",
    "3-1:5",
    "a:b",
    "1-3:5,,4-6:5",
    "1-3:5,",
    ",1-3:5",
    "1-3:0,4-6:0",  # a total weight of 0
    "1-3:80,4-6",  # a part without a weight
    "1-3:",
    ":5",
    "1-3:1.5",
    "1-3:80,4-2000:20",
    "1-10:80,5-6:20",  # parts overlap: which one would 5 count in?
    "1-3:50,1-3:50",
]


@pytest.mark.parametrize("text", BAD_MIXES)
def test_a_bad_mix_on_the_command_line_names_the_option(project: Path, text: str) -> None:
    line = _error_line(runner.invoke(app, ["seed", "--clients-per-user", text]))
    assert line.startswith("error: --clients-per-user: "), line
    assert not (project / "invoicegen.db").exists()


@pytest.mark.parametrize("text", BAD_MIXES[:4])
def test_a_bad_mix_in_the_environment_names_the_variable(project: Path, text: str) -> None:
    env = {"INVOICEGEN_CONTRACTS_PER_CLIENT": text}
    line = _error_line(runner.invoke(app, ["seed"], env=env))
    assert line.startswith(
        "error: environment INVOICEGEN_CONTRACTS_PER_CLIENT: --contracts-per-client: "
    ), line
    assert not (project / "invoicegen.db").exists()


@pytest.mark.parametrize("text", BAD_MIXES[:4])
def test_a_bad_mix_in_a_profile_names_the_profile(project: Path, text: str) -> None:
    (project / "invoicegen.toml").write_text(f'[profiles.skew]\ninvoices_per_contract = "{text}"\n')
    line = _error_line(runner.invoke(app, ["seed", "--profile", "skew"]))
    assert line.startswith("error: profile skew in invoicegen.toml: --invoices-per-contract: "), (
        line
    )
    assert not (project / "invoicegen.db").exists()


def test_a_mix_comes_from_every_source(project: Path) -> None:
    (project / "invoicegen.toml").write_text(
        '[profiles.skew]\nclients_per_user = "1:50,2:50"\ninvoices_per_contract = "1:3,2:1"\n'
    )
    env = {"INVOICEGEN_CONTRACTS_PER_CLIENT": "1:1,3:1"}
    sources = verbose_sources("--profile", "skew", "-n", "3", env=env)
    assert sources["clients_per_user"].split() == [
        "1:50,2:50", "profile", "skew", "in", "invoicegen.toml"
    ]  # fmt: skip
    assert sources["contracts_per_client"].split()[:2] == ["1:1,3:1", "environment"]
    assert sources["invoices_per_contract"].startswith("1:3,2:1")


# --- issue 10, defect 8: every bad setting is a usage error before anything is created ---------


def _refused_before_anything(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Exit 2 with one line, and no database file (so no run) was created."""
    before = set(project.iterdir())
    line = _error_line(runner.invoke(app, ["seed", "-n", "2", "--workers", "1", *args], env=env))
    assert not (project / "invoicegen.db").exists()
    assert set(project.iterdir()) == before
    return line


@pytest.mark.parametrize(
    ("as_of", "needle"),
    [
        ("0001-01-01", "got 0001-01-01"),
        ("1899-12-31", "got 1899-12-31"),
        ("9001-01-01", "got 9001-01-01"),
    ],
)
def test_an_as_of_outside_the_usable_range_is_refused(
    project: Path, as_of: str, needle: str
) -> None:
    line = _refused_before_anything(project, "--as-of", as_of)
    assert line.startswith("error: --as-of:") and "1900-01-01" in line and "9000-12-31" in line
    assert needle in line


def test_an_as_of_out_of_range_from_the_environment_names_the_variable(project: Path) -> None:
    line = _refused_before_anything(project, env={"INVOICEGEN_AS_OF": "0002-02-02"})
    assert "environment INVOICEGEN_AS_OF" in line and "0002-02-02" in line


def test_a_seed_plan_refuses_an_as_of_outside_the_range() -> None:
    with pytest.raises(UsageError, match=r"as_of: must be between 1900-01-01 and 9000-12-31"):
        SeedPlan(users=1, as_of=dt.date(1, 1, 1))


@pytest.mark.parametrize("as_of", ["1900-01-01", "9000-12-31"])
def test_the_ends_of_the_as_of_range_seed(project: Path, as_of: str) -> None:
    data = seed_json("-n", "3", "--seed", "1", "--as-of", as_of)
    assert data["as_of"] == as_of and data["counts"]["users"] == 3


@pytest.mark.parametrize(
    ("file", "content", "needles"),
    [
        (
            "pyproject.toml",
            "[tool.invoicegen]\nas_of = 2025-06-30T10:00:00\n",
            ["pyproject.toml [tool.invoicegen]", "--as-of", "date and time"],
        ),
        (
            "invoicegen.toml",
            "[profiles.p]\nas_of = 2025-06-30T10:00:00Z\n",
            ["invoicegen.toml", "--as-of", "date and time"],
        ),
        ("pyproject.toml", "tool = 5\n", ["pyproject.toml", "[tool]", "a table"]),
        ("pyproject.toml", "[tool]\ninvoicegen = 5\n", ["pyproject.toml", "[tool.invoicegen]"]),
        ("invoicegen.toml", "profiles = 5\n", ["invoicegen.toml", "profiles", "a table"]),
        ("invoicegen.toml", "[profiles]\np = 5\n", ["invoicegen.toml", "profiles.p", "a table"]),
        (
            "pyproject.toml",
            b"[tool.invoicegen]\nlocale = '\xff\xfe'\n",
            ["pyproject.toml", "UTF-8", "line 2"],
        ),
        ("invoicegen.toml", b"\xc3\x28 = 1\n", ["invoicegen.toml", "UTF-8"]),
        ("invoicegen.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n", ["invoicegen.toml", "nested"]),
        ("pyproject.toml", "x = " + "{a=" * 5000 + "1" + "}" * 5000, ["pyproject.toml", "nested"]),
    ],
    ids=[
        "pyproject datetime",
        "profile datetime",
        "tool not a table",
        "tool.invoicegen not a table",
        "profiles not a table",
        "a profile not a table",
        "pyproject invalid utf-8",
        "invoicegen.toml invalid utf-8",
        "deep arrays",
        "deep tables",
    ],
)
def test_a_bad_settings_file_is_refused_naming_it(
    project: Path, file: str, content: str | bytes, needles: list[str]
) -> None:
    path = project / file
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = ("--profile", "p") if "profiles.p]" in str(content) else ()
    line = _refused_before_anything(project, *args)
    assert all(needle in line for needle in needles), line


@pytest.mark.parametrize("name", ["invoicegen.toml", "pyproject.toml"])
def test_a_settings_file_that_is_a_directory_is_refused(project: Path, name: str) -> None:
    (project / name).mkdir()
    line = _refused_before_anything(project)
    assert name in line and "not a file" in line


def test_a_profile_is_found_from_a_subfolder_and_verbose_names_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "invoicegen.db").touch()  # the URL is relative to where invoicegen runs
    deeper = project / "src" / "app"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    data = seed_json("--profile", "demo", "-d", f"sqlite:///{project / 'sub.db'}")
    assert data["seed"] == 7 and data["counts"]["users"] == 4
    result = runner.invoke(
        app, ["seed", "--profile", "demo", "-d", f"sqlite:///{project / 'v.db'}", "--verbose"]
    )
    assert result.exit_code == 0, result.stderr
    shown = " ".join(result.output.split())
    assert "../../pyproject.toml" in shown, result.output
    assert settings.profile_names(deeper) == ["demo", "load"]


def test_the_walk_up_stops_at_the_first_project_file(project: Path) -> None:
    (project / "invoicegen.toml").write_text("users = 2\n")
    inner = project / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    below = inner / "pkg"
    below.mkdir()
    resolved = settings.resolve({}, keys=["users"], cwd=below, environ={})
    assert resolved.users == 50 and resolved.sources["users"] == "default"
    (project / "sibling").mkdir()
    resolved = settings.resolve({}, keys=["users"], cwd=project / "sibling", environ={})
    assert resolved.users == 2 and resolved.sources["users"] == "../invoicegen.toml"


def test_the_walk_up_stops_at_a_git_folder(project: Path) -> None:
    (project / "invoicegen.toml").write_text("users = 2\n")
    repo = project / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "docs").mkdir()
    for start in (repo, repo / "docs"):
        resolved = settings.resolve({}, keys=["users"], cwd=start, environ={})
        assert resolved.sources["users"] == "default", start
    with pytest.raises(UsageError, match="no profile 'demo'.*here or above"):
        settings.resolve({}, keys=["users"], profile="demo", cwd=repo / "docs", environ={})


def test_an_unreadable_file_above_is_named_by_its_path(project: Path) -> None:
    (project / "invoicegen.toml").write_text("users = [\n")
    (project / "sub").mkdir()
    with pytest.raises(UsageError, match=r"\.\./invoicegen\.toml: not valid TOML"):
        settings.resolve({}, cwd=project / "sub", environ={})
