"""Log lines stay short: round lists become ranges, a retried round shows how often it ran."""

from __future__ import annotations

import pytest

from enclavefl.owner.notices import format_rounds


@pytest.mark.parametrize(
    ("rounds", "text"),
    [
        ([], "none"),
        ([4], "4"),
        (list(range(1, 301)), "1-300"),
        ([*range(1, 174), 173, *range(174, 301)], "1-172, 173 (twice), 174-300"),
        ([1, 2, 5, 7, 8, 9], "1-2, 5, 7-9"),
        ([3, 3, 3], "3 (3 times)"),
        ([9, 8, 7], "7-9"),
    ],
)
def test_rounds_are_written_as_ranges(rounds: list[int], text: str) -> None:
    assert format_rounds(rounds) == text
