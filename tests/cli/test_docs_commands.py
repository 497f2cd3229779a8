"""Every `enclavefl ...` command the README, the tutorial and docs/cli.md show exists, with the options shown.

A newcomer copies these lines; a renamed option or command must fail here, not in their terminal.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from enclavefl.cli.main import LazyGroup, app

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "docs/tutorial.md", "docs/cli.md", "examples/seed-processes/README.md"]


def command_lines(text: str) -> list[str]:
    """`enclavefl ...` lines inside ```sh blocks, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("enclavefl"):
                lines.append(line)
    return lines


def _documented() -> list[tuple[str, str]]:
    return [(doc, line) for doc in DOCUMENTS for line in command_lines((REPO / doc).read_text())]


def _resolve(words: list[str]) -> tuple[object, list[str]]:
    command: object = typer.main.get_command(app)
    rest = words[1:]
    while isinstance(command, TyperGroup) and rest and not rest[0].startswith("-"):
        assert rest[0] in command.commands, f"no command {rest[0]!r}"
        lazy = isinstance(command, LazyGroup)  # the root imports a subcommand's module only when asked
        command, rest = command.load_command(rest[0]) if lazy else command.commands[rest[0]], rest[1:]
    return command, rest


def test_the_documents_show_commands() -> None:
    assert len(_documented()) >= 20


def unknown_options(line: str) -> list[str]:
    """The options `line` uses that its command does not have (AssertionError for an unknown command)."""
    words = shlex.split(line.replace("$MO", "").replace('"${MO[@]}"', ""))
    command, rest = _resolve(words)
    known = {opt for param in getattr(command, "params", []) for opt in (*param.opts, *param.secondary_opts)}
    used = {word.split("=")[0] for word in rest if word.startswith("--")}
    return sorted(used - known - {"--help"})


@pytest.mark.parametrize(("doc", "line"), _documented(), ids=lambda v: v if v.endswith(".md") else v[:60])
def test_a_documented_command_exists_with_its_options(doc: str, line: str) -> None:
    assert unknown_options(line) == [], f"{doc}: {line!r}"


def test_the_check_catches_a_renamed_option_and_a_missing_command() -> None:
    assert unknown_options("enclavefl node serve --job job.toml --statedir s") == ["--statedir"]
    with pytest.raises(AssertionError, match="no command 'serv'"):
        unknown_options("enclavefl node serv --job job.toml")
