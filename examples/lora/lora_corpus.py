"""Text that ships with CPython, as a public corpus (the base model's) and three owners' private ones (non-IID).

    public = docstring_corpus()                  # stdlib docstrings: the base model and its tokenizer learn from them
    private = owner_corpora()                    # {"statements": ..., "expressions": ..., "datamodel": ...}
    tokenizer = train_tokenizer(public, vocab_size=2048)
    x, y = next_token_blocks(tokenizer, private["statements"].train, length=64)

The owners' text is the language reference as `pydoc` ships it (`pydoc_data.topics`), split by theme, so each
owner holds different chapters: statements, expressions and strings, the data model and built-in types. The last
tenth of every topic is held out (the `test` part): a model that learns only one owner's chapters does worse on
the others'. Nothing is downloaded: the text is the running interpreter's own (so it varies a little across Python
versions).
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

END_OF_TEXT = "<|endoftext|>"
HELD_OUT_FRACTION = 0.1

# Modules whose docstrings make the public corpus (stdlib only; imported for their docstrings, nothing is run).
DOCSTRING_MODULES = tuple(
    """
    abc argparse array ast asyncio base64 bisect calendar cmath cmd codecs collections colorsys concurrent.futures
    configparser contextlib copy csv dataclasses datetime decimal difflib doctest email.message enum fnmatch
    fractions functools getopt gettext glob graphlib gzip hashlib heapq hmac html http.client inspect io ipaddress
    itertools json keyword locale logging mailbox math mimetypes mmap numbers operator optparse os pathlib platform
    pprint queue random re sched secrets selectors shlex shutil signal socket sqlite3 statistics string struct
    subprocess tarfile tempfile textwrap threading timeit tokenize tomllib traceback types typing unittest
    urllib.parse uuid warnings weakref xml.etree.ElementTree zipfile zlib zoneinfo
    """.split()  # noqa: SIM905  (a word list keeps the names short)
)

# Each owner's chapters of the language reference; topics not named here go to "datamodel".
THEMES: dict[str, tuple[str, ...]] = {
    "statements": tuple(
        """
        assert assignment async augassign await break class compound context-managers continue debugger del
        dynamic-features else exceptions execmodel for function global if import naming nonlocal pass raise return
        try while with yield
        """.split()  # noqa: SIM905
    ),
    "expressions": tuple(
        """
        atom-identifiers atom-literals attribute-references binary bitwise booleans calls comparisons conversions
        exprlists floating formatstrings identifiers imaginary in integers lambda lists numbers operator-summary
        power shifting slicings string-methods strings subscriptions truth unary
        """.split()  # noqa: SIM905
    ),
    "datamodel": (),
}


@dataclass(frozen=True, slots=True)
class OwnerText:
    train: str
    test: str


def docstring_corpus(modules: tuple[str, ...] = DOCSTRING_MODULES) -> str:
    """The docstrings of some stdlib modules and their public members, each once, in a fixed order."""
    seen: set[str] = set()
    parts: list[str] = []

    def add(obj: object) -> None:
        doc = inspect.getdoc(obj)
        if doc and doc not in seen:
            seen.add(doc)
            parts.append(doc)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # typing's deprecated aliases say so when read
        for name in modules:
            _add_module(importlib.import_module(name), add)
    return f"\n{END_OF_TEXT}\n".join(parts)


def _add_module(module: ModuleType, add: Callable[[object], None]) -> None:
    """The module's docstring, then its own public members' and their methods' (not what it imports)."""
    add(module)
    for attr in sorted(vars(module)):
        value = getattr(module, attr)
        if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        add(value)
        if inspect.isclass(value):
            for member in sorted(vars(value)):
                if not member.startswith("_") and callable(vars(value)[member]):
                    add(vars(value)[member])


def owner_corpora() -> dict[str, OwnerText]:
    """The language reference's topics split by theme; the last tenth of each topic is held out."""
    from pydoc_data.topics import topics

    split: dict[str, tuple[list[str], list[str]]] = {owner: ([], []) for owner in THEMES}
    for topic in sorted(topics):
        owner = next((o for o, chosen in THEMES.items() if topic in chosen), "datamodel")
        text = topics[topic]
        cut = int(len(text) * (1 - HELD_OUT_FRACTION))
        split[owner][0].append(text[:cut])
        split[owner][1].append(text[cut:])
    glue = f"\n{END_OF_TEXT}\n"
    return {owner: OwnerText(train=glue.join(tr), test=glue.join(te)) for owner, (tr, te) in split.items()}


def train_tokenizer(text: str, *, vocab_size: int) -> Tokenizer:
    """A byte-level BPE tokenizer learnt from `text` (every byte is representable: no unknown tokens)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[END_OF_TEXT],
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.split(f"\n{END_OF_TEXT}\n"), trainer)
    return tokenizer


def next_token_blocks(tokenizer: Tokenizer, text: str, *, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping blocks of `length` tokens `x` and the tokens that follow each position `y` (int64)."""
    ids = torch.tensor(tokenizer.encode(text).ids, dtype=torch.int64)
    count = (len(ids) - 1) // length
    if count < 1:
        raise ValueError(f"{len(ids)} tokens make no block of {length}")
    x = ids[: count * length].reshape(count, length)
    y = ids[1 : count * length + 1].reshape(count, length)
    return x, y
