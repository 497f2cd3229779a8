"""Messages a newcomer reads: who printed which loss, help text that survives rich markup, whole hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from enclavefl.cli.main import LazyGroup, app

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_the_one_process_demo_labels_bobs_and_alices_losses_and_prints_whole_digests() -> None:
    result = runner.invoke(app, ["demo", "--rounds", "1"], terminal_width=80)

    assert result.exit_code == 0, result.output
    assert "[bob] round 1 local losses:" in result.output
    assert "[alice] round 1 local losses:" in result.output
    assert re.search(r"^final model weights digest: [0-9a-f]{64}$", result.output, flags=re.M)


def _leaf_commands() -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in list(command.commands.items()):
                walk(command.load_command(name) if isinstance(command, LazyGroup) else sub, (*path, name))
        else:
            found.append((path, getattr(command, "help", None) or ""))

    walk(typer.main.get_command(app), ())
    return found


@pytest.mark.parametrize(
    ("command", "doc"), _leaf_commands(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_help_keeps_bracketed_words_and_names_docs_that_exist(command: tuple[str, ...], doc: str) -> None:
    # rich takes "[strategy]" for markup and drops it unless escaped ("edit the  / dp tables")
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)

    said = " ".join(result.output.split())
    for word in re.findall(r"(?<!\\)\[([a-z_]+)\]", doc):
        assert f"[{word}]" in said, f"{word!r} vanished from the help"
    assert all((REPO / name).is_file() for name in re.findall(r"docs/[a-z-]+\.md", said))
