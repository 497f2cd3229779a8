"""The repository is self-contained: no test, doc, benchmark or source file names a path outside it.

A clean clone must pass `make test`; a path into one developer's machine (a home directory, a shared
mount) or a relative path that climbs out of the checkout works only there. Paths that name places
*inside* a deployed enclave or a distribution (`/enclavefl/job`, `/dev/attestation`, `/usr/lib/...`,
`/srv/efl/state` in examples) are legitimate and stay allowed: the rules below flag only host-specific
prefixes and relative paths that leave the repository or point at nothing in it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "tests", "docs", "benchmarks", "examples", "packaging", "scripts")
SCANNED_ROOT_FILES = ("README.md", "Makefile", "pyproject.toml", "requirements-enclave.txt")

# Prefixes that only ever mean "somebody's machine": home directories, workspaces, mounts.
HOST_SPECIFIC = re.compile(r"(?<![\w.~/-])/(?:work|home|Users|root|mnt|media|scratch|nfs)/[\w.-]")
WINDOWS_HOME = re.compile(r"\b[A-Za-z]:\\\\?Users\\\\?")
CLIMBING = re.compile(r"(?<![\w./-])((?:\.\./)+)([\w][\w.-]*)")
FILE_PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")

# Relative paths written as hostile input or relative to a directory the script changes into.
ALLOWED_CLIMBS = {
    ("tests/tee/test_simulation_device.py", "../secret"),  # a refused device name, not a file
    ("examples/seed-processes/run.sh", "../task.py"),  # run.sh works inside ./work
    ("examples/seed-processes/run.sh", "../make_data.py"),
    ("tests/attacks/test_task_paths.py", "../../../../etc"),  # refused --task specs (hostile input), not files
}


def _scanned_files() -> list[Path]:
    files = [REPO / name for name in SCANNED_ROOT_FILES if (REPO / name).is_file()]
    for top in SCANNED_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.stat().st_size < 1_000_000:
                files.append(path)
    # This file spells out the allowed exceptions; its own rule examples are split so they never match.
    return [path for path in files if path != Path(__file__).resolve()]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary test vectors


def outside_paths(path: Path, text: str) -> list[str]:
    """Every way `text` (the content of `path`) names something outside the repository."""
    relative = path.relative_to(REPO).as_posix()
    found = [f"host-specific path {m.group(0)!r}" for m in HOST_SPECIFIC.finditer(text)]
    found += [f"host-specific path {m.group(0)!r}" for m in WINDOWS_HOME.finditer(text)]
    for match in CLIMBING.finditer(text):
        climbs, first = match.group(1), match.group(2)
        if (relative, climbs + first) in ALLOWED_CLIMBS:
            continue
        base = (path.parent / climbs).resolve()
        if not base.is_relative_to(REPO):
            found.append(f"{climbs + first!r} climbs out of the repository")
        elif not (base / first).exists():
            found.append(f"{climbs + first!r} names nothing in the repository")
    for match in FILE_PARENTS.finditer(text):
        level = int(match.group(1))
        if level >= len(path.parents) or not path.parents[level].is_relative_to(REPO):
            found.append(f"__file__ parents[{level}] is outside the repository")
    return found


def test_no_file_names_a_path_outside_the_repository() -> None:
    offenders = []
    for path in _scanned_files():
        text = _text(path)
        if text is None:
            continue
        offenders += [f"{path.relative_to(REPO)}: {what}" for what in outside_paths(path, text)]

    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        'VECTORS = Path("/' + 'work/shared/tee-vectors")',
        "see /" + "home/alice/data.safetensors",
        "cat ../../../" + "shared/reference/notes.md",
        "open ../" + "shared/tee-vectors/sgx_quote",
        "ROOT = Path(__file__).resolve().parents[9]",
    ],
)
def test_the_rule_flags_paths_into_a_developer_machine(line: str) -> None:
    assert outside_paths(REPO / "tests" / "tee" / "test_x.py", line) != []


@pytest.mark.parametrize(
    "line",
    [
        '{ path = "/enclavefl/job", uri = "file:job" }',
        "with open('/dev/attestation/quote', 'rb') as quote:",
        "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc",
        "--state /srv/efl/state",
        'VECTORS = Path(__file__).resolve().parents[1] / "vectors"',
        "see ../vectors/README.md",
    ],
)
def test_the_rule_allows_in_enclave_system_and_in_repository_paths(line: str) -> None:
    assert outside_paths(REPO / "tests" / "tee" / "test_x.py", line) == []
