"""The attack tests reuse the CLI tests' in-process node harness (tests/cli/node_harness.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
