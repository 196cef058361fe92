"""Word-level corpora (Penn Treebank, WikiText-2) as token tensors.

As in the AWD-LSTM / DARTS ``Corpus``: every line is split on whitespace and
ends with ``<eos>``; word ids follow the order of first appearance, train
first (then any words new in valid and test, which PTB and WikiText-2 lack).
"""

from __future__ import annotations

from pathlib import Path

import torch

from nsas.data.common import TextDataset
from nsas.errors import DataError

# name -> (folder under data_dir, accepted file names per split, first found wins)
CORPORA = {
    "ptb": ("ptb", {s: (f"ptb.{s}.txt", f"{s}.txt") for s in ("train", "valid", "test")}),
    "wikitext2": ("wikitext-2", {s: (f"wiki.{s}.tokens", f"{s}.txt") for s in ("train", "valid", "test")}),
}
EOS = "<eos>"


def tokenize(path: Path, ids: dict[str, int]) -> torch.Tensor:
    """Token ids (T,) of a text file, adding unseen words to ``ids`` in order."""
    out: list[int] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for word in line.split() + [EOS]:
                out.append(ids.setdefault(word, len(ids)))
    return torch.tensor(out, dtype=torch.int64)


def load_corpus(name: str, data_dir: Path) -> TextDataset:
    """Load the corpus ``name`` (``ptb`` or ``wikitext2``) from ``data_dir/<folder>``.

    Raises:
        DataError: a split file is missing or not UTF-8 text.
    """
    folder, files = CORPORA[name]
    root = data_dir / folder
    ids: dict[str, int] = {}
    splits = {}
    for split, candidates in files.items():
        path = next((root / c for c in candidates if (root / c).is_file()), None)
        if path is None:
            want = ", ".join(c[0] for c in files.values())
            raise DataError(
                f"{name}: {root / candidates[0]} is missing; "
                f"put {want} in {root} (or set --data-dir / $NSAS_DATA)"
            )
        try:
            splits[split] = tokenize(path, ids)
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e}); replace it with the original file") from None
    return TextDataset(name=name, vocab=tuple(ids), **splits)
