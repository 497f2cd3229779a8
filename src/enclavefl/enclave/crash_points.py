"""Crash points: where a crash-safety test may stop the node. Inert unless a test installs a hook.

    install_crash_hook(lambda point, round_index: ...)   # tests/faults/fault_node_runner.py does this

Points: `upload-mid-stream` (the node has read part of an update), `round-finalized` (the aggregate exists
but is neither sealed nor released), `checkpoint-log-appended` (the round's receipt is appended to the sealed
log and fsynced, its checkpoint not yet written), `checkpoint-before-rename` (the sealed temporary file is
written and fsynced, the rename has not happened), `round-sealed` (the round's checkpoint is on disk, its
receipt not yet signed by the owners, nothing released). Only code running in the node's own process can install a hook:
nothing here reads the environment, a file or the network, so the host cannot arm a production node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

POINTS: Final = (
    "upload-mid-stream",
    "round-finalized",
    "checkpoint-log-appended",
    "checkpoint-before-rename",
    "round-sealed",
)

CrashHook = Callable[[str, int], None]
_hook: CrashHook | None = None


def install_crash_hook(hook: CrashHook | None) -> None:
    """Call `hook(point, round_index)` at every crash point from now on (None removes it)."""
    global _hook
    _hook = hook


def crash_point(point: str, round_index: int) -> None:
    """Run the installed hook for `point` in `round_index`; nothing when none is installed."""
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}")
    if _hook is not None:
        _hook(point, round_index)


def crash_mid_stream(chunks: Iterable[bytes | memoryview], round_index: int) -> Iterable[bytes | memoryview]:
    """`chunks`, unchanged, or (with a hook installed) passing through the hook after the first chunk."""
    if _hook is None:
        return chunks
    return _hook_after_first(chunks, round_index)


def _hook_after_first(chunks: Iterable[bytes | memoryview], round_index: int) -> Iterator[bytes | memoryview]:
    for index, chunk in enumerate(chunks):
        if index == 1:
            crash_point("upload-mid-stream", round_index)
        yield chunk
