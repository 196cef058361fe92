"""Tiny supernets and batches of every space, for fast tests of the method."""

from __future__ import annotations

import torch

from nsas.spaces import get_space

TINY = {
    "nb201": dict(channels=4, cells=1, num_classes=5),
    "darts": dict(channels=4, cells=3, num_classes=5),
    "darts-chain": dict(channels=4, cells=3, num_classes=5),
    "darts-rnn": dict(vocab=30, hidden=8, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0),
}


def tiny_supernet(space: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_space(space).build_supernet(**TINY[space])


def tiny_batch(space: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if get_space(space).kind == "text":
        tokens = torch.randint(0, 30, (6, 3), generator=g)
        return tokens[:-1], tokens[1:]
    return torch.randn(6, 3, 16, 16, generator=g), torch.randint(0, 5, (6,), generator=g)


def fake_dataset(name: str, data_dir=None, download: bool = True):
    """Stand-in for nsas.data.load_dataset: tiny deterministic image and text sets."""
    from nsas.data import ImageDataset, TextDataset

    g = torch.Generator().manual_seed(0)
    if name == "fake-text":
        vocab = tuple(f"w{i}" for i in range(30))
        return TextDataset(name=name, train=torch.randint(0, 30, (400,), generator=g),
                           valid=torch.randint(0, 30, (200,), generator=g),
                           test=torch.randint(0, 30, (200,), generator=g), vocab=vocab)
    if name == "fake-images":
        return ImageDataset(name=name, train_x=torch.randint(0, 256, (96, 3, 16, 16), generator=g, dtype=torch.uint8),
                            train_y=torch.arange(96) % 5, test_x=torch.randint(0, 256, (20, 3, 16, 16), generator=g,
                                                                                 dtype=torch.uint8),
                            test_y=torch.arange(20) % 5, classes=tuple("abcde"), mean=(0.5, 0.5, 0.5),
                            std=(0.25, 0.25, 0.25))
    from nsas.data import load_dataset

    return load_dataset(name, data_dir, download)


def tiny_search_config(space: str = "nb201", **overrides):
    """A SearchConfig that trains a few steps of a tiny supernet on fake data."""
    from nsas.search import SearchConfig

    text = space == "darts-rnn"
    values = dict(space=space, strategy="random", loss="nsas", dataset="fake-text" if text else "fake-images",
                  epochs=1, steps_per_epoch=2, batch_size=4 if text else 8, channels=4,
                  cells=3 if space.startswith("darts") else 1, hidden=8, bptt=5, eval_batches=1,
                  select_rounds=1, select_samples=2, archive_size=2, pool_size=4, probe_count=2,
                  log_every=1, checkpoint_every=0)
    values.update(overrides)
    return SearchConfig(**values)


def bench_module(name: str, monkeypatch):
    """``bench/<name>.py`` imported as module ``name`` (registered for the test: its dataclasses look it up).

    bench/ goes first on ``sys.path`` for the test, as it does when a script runs as ``python bench/X.py``
    (Python puts the script's folder there), so the scripts import each other by plain name.
    """
    import importlib.util
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


# A DARTS CNN genotype (DARTS_V2) and a DARTS RNN genotype, for tests that need valid strings of each.
DARTS_GENOTYPE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                  "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                  "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
                  "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                  "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
RNN_GENOTYPE = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
                "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")


def tiny_run(path):
    """A finished search run of a tiny nb201 supernet (4 channels, 1 cell per stage) on cifar10-mini, at ``path``."""
    from nsas.search import SearchConfig, search

    cfg = SearchConfig(space="nb201", dataset="cifar10-mini", epochs=1, steps_per_epoch=2, batch_size=16,
                       channels=4, cells=1, eval_batches=1, select_rounds=1, select_samples=2,
                       checkpoint_every=0, device="cpu")
    search(cfg, path, progress=False)
    return path
