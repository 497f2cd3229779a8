"""The rows and sections a consent summary is made of (owner/consent.py builds them; its sections use them).

ConsentSection(key="job", title="The job", rows=(ConsentRow(key="rounds", label="rounds", value="5"),))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["", "ok", "refused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRow:
    """One fact: a stable key, what a person reads, and (site-policy rows) whether the owner's limit holds."""

    key: str
    label: str
    value: str
    verdict: Verdict = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentSection:
    key: str
    title: str
    rows: tuple[ConsentRow, ...]
    note: str = ""  # one sentence under the title: what the section means, or why it is empty


__all__ = ["ConsentRow", "ConsentSection", "Verdict"]
