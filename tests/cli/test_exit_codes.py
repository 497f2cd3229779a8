"""One exit-status table: every command's --help, docs/cli.md and the entry points agree with core.exit_codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from enclavefl.cli.main import LazyGroup, app
from enclavefl.core.exit_codes import ALWAYS, EXIT_MEANINGS, NODE_EXIT_CODES, ExitCode, exit_status_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
runner = CliRunner()


def _leaf_commands() -> list[tuple[str, ...]]:
    """Every runnable command path under `enclavefl`, e.g. ("node", "serve")."""
    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in list(command.commands.items()):
                walk(command.load_command(name) if isinstance(command, LazyGroup) else sub, (*path, name))
        else:
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


def documented_statuses(help_text: str) -> dict[int, str]:
    """The 'N = meaning' entries after 'Exit status:' in a help text, whatever the wrapping and box drawing."""
    _, found, tail = help_text.partition("Exit status:")
    assert found, "no 'Exit status:' section"
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", tail).split())
    pieces = re.split(r"(?:^| )(\d{1,3}) = ", flat)[1:]
    statuses = {int(code): meaning.strip() for code, meaning in zip(pieces[::2], pieces[1::2], strict=True)}
    last = max(statuses)
    statuses[last] = statuses[last].split(" Each command's")[0]  # the root help's closing pointer
    return statuses


def _docs_rows() -> dict[tuple[str, ...], set[int]]:
    rows = re.findall(r"^\| `enclavefl ([a-z -]+)` \| ([\d, ]+) \|$", DOCS.read_text(), flags=re.M)
    return {tuple(name.split()): {int(c) for c in codes.split(",")} for name, codes in rows}


def test_there_are_commands_to_check() -> None:
    assert ("node", "serve") in _leaf_commands() and ("data-owner", "run") in _leaf_commands()


@pytest.mark.parametrize("command", _leaf_commands(), ids=" ".join)
def test_every_command_help_lists_statuses_with_the_tables_meaning(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=100)

    assert result.exit_code == 0, result.output
    statuses = documented_statuses(result.output)
    assert set(ALWAYS) <= set(statuses)
    for code, meaning in statuses.items():
        assert meaning == EXIT_MEANINGS[ExitCode(code)], f"{' '.join(command)}: status {code}"
    assert _docs_rows()[command] == set(statuses), "docs/cli.md lists other statuses for this command"


def test_the_root_help_shows_the_whole_table() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=100)

    assert documented_statuses(result.output) == {int(code): text for code, text in EXIT_MEANINGS.items()}


def test_docs_hold_the_table_and_a_row_per_command() -> None:
    assert exit_status_table() in DOCS.read_text()
    assert set(_docs_rows()) == set(_leaf_commands())


@pytest.mark.slow
def test_the_data_owners_entry_point_without_the_cli_prints_the_same_meanings() -> None:
    out = _help_of("enclavefl.owner.data_owner_main")

    statuses = documented_statuses(out)
    assert set(ALWAYS) <= set(statuses)
    assert all(meaning == EXIT_MEANINGS[ExitCode(code)] for code, meaning in statuses.items())


@pytest.mark.slow
def test_the_enclaves_entry_point_names_the_node_statuses_and_points_to_their_meanings() -> None:
    # The enclave loads the numbers only (core/exit_status.py): their meanings are printed outside it.
    out = " ".join(_help_of("enclavefl.enclave.main").split())

    _, found, tail = out.partition("Exit status: ")
    named = dict(re.findall(r"(\d{1,3}) ([A-Z_]+)", tail.split(" (")[0]))
    assert found and {int(code): name for code, name in named.items()} == {
        int(code): code.name for code in {*ALWAYS, *NODE_EXIT_CODES}
    }
    assert "enclavefl node serve --help" in tail and "docs/cli.md" in tail


def _help_of(module: str) -> str:
    return subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True).stdout


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert re.fullmatch(r"enclavefl \d+\.\d+\.\d+\S*\n", result.output)


def test_a_malformed_node_address_is_a_configuration_error(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("job.toml", "policy.toml", "k.key", "k.pem")}
    for path in files.values():
        path.write_text("")

    result = runner.invoke(
        app,
        [
            "job",
            "status",
            "--node",
            "localhost-no-port",
            "--job",
            str(files["job.toml"]),
            "--policy",
            str(files["policy.toml"]),
            "--key",
            str(files["k.key"]),
            "--cert",
            str(files["k.pem"]),
        ],
    )

    assert result.exit_code == ExitCode.CONFIG
    assert "expected HOST:PORT" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["data-owner", "keygen", "--name", "x", "--out", "/proc/no-such-dir"],
        ["node", "policy", "--platform-dir", "/proc/no-such-dir", "--out", "{tmp}/policy.toml"],
        [
            "job",
            "download",
            "--node",
            "127.0.0.1:1",
            "--job",
            "{tmp}/j.toml",
            "--policy",
            "{tmp}/p.toml",
            "--key",
            "{tmp}/k",
            "--cert",
            "{tmp}/c",
            "--out",
            "{tmp}/missing/final.safetensors",
        ],
    ],
    ids=["keygen-unwritable", "policy-unwritable-platform", "download-into-missing-dir"],
)
def test_a_path_the_user_got_wrong_is_a_configuration_error_not_a_traceback(args: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])

    assert result.exit_code == ExitCode.CONFIG, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: ")


def test_the_entry_point_turns_an_unexpected_file_error_into_one_line(tmp_path: Path) -> None:
    code = (
        "import sys; from enclavefl.cli import main as m\n"
        "def boom(): raise PermissionError(13, 'Permission denied', '/srv/x')\n"
        "m.app = boom\n"
        "m.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.strip() == "error: PermissionError: /srv/x: Permission denied"
