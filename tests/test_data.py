"""Tests for nsas.data: data sets, search splits, batches and augmentation."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nsas.data import (
    ImageBatches,
    ImageDataset,
    TextBatches,
    TextDataset,
    dataset_names,
    load_dataset,
    search_split,
)
from nsas.data import cifar
from nsas.data.batches import crop_flip, cutout
from nsas.data.common import default_data_dir
from nsas.data.imagefolder import MINI_ASSET
from nsas.errors import DataError

from shared_data import require_shared

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------- real data sets


@pytest.fixture(scope="module")
def cifar_jpeg(tmp_path_factory) -> tuple[ImageDataset, Path, Path]:
    """The shared CIFAR-10 JPEG archive, decoded once into a fresh cache."""
    archive = require_shared("cifar10-jpeg.tar.gz")
    data_dir = tmp_path_factory.mktemp("cifar-jpeg")
    return load_dataset(f"imagefolder:{archive}", data_dir=data_dir), data_dir, archive


def test_shared_cifar10_imagefolder(cifar_jpeg):
    ds, data_dir, archive = cifar_jpeg
    assert isinstance(ds, ImageDataset)
    assert ds.train_x.shape == (50_000, 3, 32, 32) and ds.test_x.shape == (10_000, 3, 32, 32)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert ds.classes == CIFAR10_CLASSES and ds.num_classes == 10
    assert ds.train_y.bincount().tolist() == [5000] * 10
    assert ds.test_y.bincount().tolist() == [1000] * 10
    # per-channel statistics of the CIFAR-10 training set
    assert ds.mean == pytest.approx((0.4913, 0.4821, 0.4465), abs=2e-3)
    assert ds.std == pytest.approx((0.2452, 0.2428, 0.2606), abs=2e-3)
    # a second load comes from the cache and gives the same arrays
    assert len(list((data_dir / "cache").glob("*.npz"))) == 1
    again = load_dataset(f"imagefolder:{archive}", data_dir=data_dir)
    assert torch.equal(again.train_x[::997], ds.train_x[::997]) and torch.equal(again.test_y, ds.test_y)


def test_shared_cifar10_pixels_match_the_jpeg(cifar_jpeg):
    ds, _, archive = cifar_jpeg
    with tarfile.open(archive) as tar:
        member = next(m for m in tar if m.name.endswith("test/bird/0000.jpg"))
        pixels = np.array(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
    first_bird = int((ds.test_y == CIFAR10_CLASSES.index("bird")).nonzero()[0])
    assert torch.equal(ds.test_x[first_bird], torch.from_numpy(pixels).permute(2, 0, 1))


def test_ptb_corpus_and_batches():
    shared = require_shared("ptb").parent
    ds = load_dataset("ptb", data_dir=shared)
    assert isinstance(ds, TextDataset) and ds.vocab_size == 10_000
    for split in ("train", "valid", "test"):
        lines = (shared / "ptb" / f"ptb.{split}.txt").read_text().splitlines()
        tokens = getattr(ds, split)
        assert tokens.dtype == torch.int64
        assert len(tokens) == sum(len(line.split()) for line in lines) + len(lines)
    eos = ds.vocab.index("<eos>")
    first = (shared / "ptb" / "ptb.train.txt").read_text().splitlines()[0].split()
    assert [ds.vocab[i] for i in ds.train[: len(first) + 1]] == first + ["<eos>"]
    assert int((ds.valid == eos).sum()) == len((shared / "ptb" / "ptb.valid.txt").read_text().splitlines())

    batches = TextBatches(ds.valid, batch_size=10, bptt=35)
    windows = list(batches.epoch(0))
    assert len(windows) == len(batches) == -(-(len(ds.valid) // 10 - 1) // 35)
    assert all(x.shape == y.shape and x.shape[1] == 10 and x.shape[0] <= 35 for x, y in windows)
    assert windows[0][0].shape == (35, 10)
    x = torch.cat([w[0] for w in windows])  # (L - 1, B)
    y = torch.cat([w[1] for w in windows])
    assert torch.equal(y[:-1], x[1:])  # y is x one token on
    column = ds.valid[: len(ds.valid) // 10]  # column 0 is the first contiguous stretch
    assert torch.equal(x[:, 0], column[:-1]) and torch.equal(y[:, 0], column[1:])
    resumed = list(batches.epoch(3, start=5))
    assert len(resumed) == len(windows) - 5 and torch.equal(resumed[0][0], windows[5][0])


def test_embedded_mini_set(tmp_path):
    ds = load_dataset("cifar10-mini", data_dir=tmp_path)
    assert ds.train_x.shape == (5000, 3, 32, 32) and ds.test_x.shape == (1000, 3, 32, 32)
    assert ds.train_y.bincount().tolist() == [500] * 10 and ds.test_y.bincount().tolist() == [100] * 10
    assert ds.classes == CIFAR10_CLASSES
    assert all(0.2 < s < 0.3 for s in ds.std) and all(0.4 < m < 0.52 for m in ds.mean)
    with np.load(MINI_ASSET, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert str(z["source_sha256"]) == "b215d45e51121fd309686efffe2998e003a79756f22ad7671c80bc14564b4c2a"
    assert MINI_ASSET.stat().st_size < 4_000_000
    cached = load_dataset("cifar10-mini", data_dir=tmp_path)
    assert torch.equal(cached.train_x, ds.train_x) and cached.mean == ds.mean


def test_registry_and_unknown_names(tmp_path, monkeypatch):
    assert {"cifar10", "cifar100", "cifar10-mini", "ptb", "wikitext2"} <= set(dataset_names())
    with pytest.raises(DataError, match="unknown data set 'mnist'"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="ptb.train.txt"):
        load_dataset("ptb", data_dir=tmp_path)
    with pytest.raises(DataError, match="wiki.train.tokens"):
        load_dataset("wikitext2", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}", data_dir=tmp_path)
    monkeypatch.setenv("NSAS_DATA", str(tmp_path / "env"))
    assert default_data_dir() == tmp_path / "env"


# ---------------------------------------------------------------- synthetic files


def test_text_corpus_vocab_order(tmp_path):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    (folder / "wiki.train.tokens").write_text("b a b\n\nc a\n")
    (folder / "wiki.valid.tokens").write_text("a d\n")
    (folder / "wiki.test.tokens").write_text("c\n")
    ds = load_dataset("wikitext2", data_dir=tmp_path)
    assert ds.vocab == ("b", "a", "<eos>", "c", "d")  # first appearance, train first
    assert [ds.vocab[i] for i in ds.train] == ["b", "a", "b", "<eos>", "<eos>", "c", "a", "<eos>"]
    assert [ds.vocab[i] for i in ds.valid] == ["a", "d", "<eos>"]


# Lines in WikiText-2's own format (wikitext-2-v1.zip -> wikitext-2/wiki.*.tokens): a leading space,
# " = Title = " headings, blank " " lines, "<unk>", split hyphens and numbers ("@-@", "@,@", "@.@"), UTF-8.
WIKI_TRAIN = (" \n"
              " = Valkyria Chronicles III = \n"
              " \n"
              " Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of the "
              "Battlefield 3 ) is a tactical role @-@ playing video game . \n"
              " \n"
              " = = Gameplay = = \n"
              " \n"
              " It sold 1 @,@ 000 copies , 3 @.@ 5 of the game . \n")
WIKI_VALID = " \n = Gameplay = \n \n It is a video game . \n"
WIKI_TEST = " \n = Valkyria = \n \n It is <unk> . \n"


def test_wikitext2_in_its_real_format(tmp_path):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for split, text in (("train", WIKI_TRAIN), ("valid", WIKI_VALID), ("test", WIKI_TEST)):
        (folder / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    ds = load_dataset("wikitext2", data_dir=tmp_path)
    lines = WIKI_TRAIN.splitlines()
    assert len(ds.train) == sum(len(line.split()) for line in lines) + len(lines)  # one <eos> per line, blank too
    words = [ds.vocab[i] for i in ds.train]
    assert words[:6] == ["<eos>", "=", "Valkyria", "Chronicles", "III", "="]
    assert words.count("<eos>") == len(lines) == 8
    for token in ("<unk>", "@-@", "@,@", "@.@", "戦場のヴァルキュリア3", "Senjō"):
        assert token in ds.vocab  # kept as single words, as in AWD-LSTM / DARTS
    assert len(ds.vocab) == len(set(words))  # valid and test add no word (true of the real WikiText-2)
    assert [ds.vocab[i] for i in ds.test[-4:]] == ["is", "<unk>", ".", "<eos>"]
    batches = TextBatches(ds.train, batch_size=2, bptt=5)
    x, y = next(batches.epoch(0))
    assert x.shape == (5, 2) and torch.equal(x[1:], y[:-1])


def test_search_command_runs_on_wikitext2(tmp_path, capsys):
    from nsas.cli import main

    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for split, text in (("train", WIKI_TRAIN * 8), ("valid", WIKI_VALID * 8), ("test", WIKI_TEST * 8)):
        (folder / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    code = main(["search", "--space", "darts-rnn", "--dataset", "wikitext2", "--data-dir", str(tmp_path),
                 "--loss", "nsas", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4", "--hidden", "8",
                 "--eval-batches", "2", "--select-rounds", "1", "--select-samples", "2", "--device", "cpu",
                 "--quiet", "--out", str(out)])
    assert code == 0 and (out / "selected.json").is_file()
    assert "darts-rnn / random / nsas on wikitext2" in capsys.readouterr().out


def _write_images(root: Path, split: str, cls: str, images: list[np.ndarray]) -> None:
    (root / split / cls).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(root / split / cls / f"{i:03d}.png")


def test_imagefolder_tree_order_labels_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {c: [rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(3)] for c in ("zebra", "ant", "mole")}
    root = tmp_path / "tree" / "top"
    for c, images in imgs.items():
        _write_images(root, "train", c, images)
        _write_images(root, "test", c, images[:1])
    ds = load_dataset(f"imagefolder:{tmp_path / 'tree'}", data_dir=tmp_path / "data")
    assert ds.classes == ("ant", "mole", "zebra")
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and ds.test_y.tolist() == [0, 1, 2]
    assert ds.train_x.shape == (9, 3, 8, 6)
    assert torch.equal(ds.train_x[4], torch.from_numpy(imgs["mole"][1]).permute(2, 0, 1))
    stacked = np.stack([i for c in ds.classes for i in imgs[c]]) / 255.0  # (9, H, W, 3)
    assert ds.mean == pytest.approx(tuple(stacked.mean((0, 1, 2))), abs=1e-9)
    assert ds.std == pytest.approx(tuple(stacked.std((0, 1, 2))), abs=1e-9)


@pytest.mark.parametrize(
    "fmt, mode", [(tarfile.PAX_FORMAT, "w"), (tarfile.GNU_FORMAT, "w:gz"), (tarfile.USTAR_FORMAT, "w:bz2")]
)
def test_imagefolder_archive_matches_the_tree(tmp_path, fmt, mode):
    rng = np.random.default_rng(1)
    top = "a-top-folder-with-a-long-name-" + "x" * 60  # member paths longer than 100 bytes
    root = tmp_path / "tree" / top
    for c in ("cat", "ant"):
        _write_images(root, "train", c, [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(2)])
        _write_images(root, "test", c, [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)])
    (root / "README.txt").write_text("not an image")
    archive = tmp_path / "tree.tar"
    with tarfile.open(archive, mode, format=fmt) as tar:
        tar.add(root, arcname=top)
    from_tree = load_dataset(f"imagefolder:{tmp_path / 'tree'}", data_dir=tmp_path / "data")
    from_tar = load_dataset(f"imagefolder:{archive}", data_dir=tmp_path / "data")
    assert from_tar.classes == from_tree.classes == ("ant", "cat")
    assert torch.equal(from_tar.train_x, from_tree.train_x) and torch.equal(from_tar.test_y, from_tree.test_y)
    assert len(list((tmp_path / "data" / "cache").glob("imagefolder-*.npz"))) == 2


def test_imagefolder_errors(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not a gzip file at all" * 10)
    with pytest.raises(DataError, match="bad.tar.gz"):
        load_dataset(f"imagefolder:{bad}", data_dir=tmp_path)
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        tar.add(Path(__file__), arcname="x/train/a/0.png")
    (tmp_path / "cut.tar").write_bytes(good.read_bytes()[:700])
    with pytest.raises(DataError, match="cut.tar"):
        load_dataset(f"imagefolder:{tmp_path / 'cut.tar'}", data_dir=tmp_path)
    root = tmp_path / "broken"
    _write_images(root, "train", "a", [np.zeros((4, 4, 3), np.uint8)])
    _write_images(root, "test", "a", [np.zeros((4, 4, 3), np.uint8)])
    (root / "train" / "a" / "001.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match="001.png"):
        load_dataset(f"imagefolder:{root}", data_dir=tmp_path)
    only_train = tmp_path / "only_train"
    _write_images(only_train, "train", "a", [np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(DataError, match="test/<class>"):
        load_dataset(f"imagefolder:{only_train}", data_dir=tmp_path)


def _cifar_records(n: int, label_bytes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records in the official layout, with their images (n, 3, 32, 32) and label bytes (n, label_bytes)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, (n, label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    # label byte(s), then the red, green and blue planes, row-major
    raw = b"".join(labels[i].tobytes() + images[i].tobytes() for i in range(n))
    return raw, images, labels


def _write_cifar10(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        raw, images, labels = _cifar_records(4, 1, seed=i)
        (folder / name).write_bytes(raw)
        xs.append(images), ys.append(labels[:, 0])
    return np.concatenate(xs), np.concatenate(ys)


def test_cifar10_binary_parsing(tmp_path):
    x, y = _write_cifar10(tmp_path / "cifar-10-batches-bin")
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert torch.equal(ds.train_x, torch.from_numpy(x[:20])) and torch.equal(ds.test_x, torch.from_numpy(x[20:]))
    assert ds.train_y.tolist() == y[:20].tolist() and ds.train_y.dtype == torch.int64
    assert ds.classes == CIFAR10_CLASSES
    assert ds.mean[0] == pytest.approx(x[:20, 0].mean() / 255)


def test_cifar100_binary_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    raw, images, labels = _cifar_records(6, 2, seed=7)
    (folder / "train.bin").write_bytes(raw)
    (folder / "test.bin").write_bytes(raw[: 2 * 3074])
    (folder / "fine_label_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    ds = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert ds.train_y.tolist() == labels[:, 1].tolist() and ds.num_classes == 10
    assert torch.equal(ds.test_x, torch.from_numpy(images[:2]))


def test_cifar_archive_extracts_and_checks_md5(tmp_path, monkeypatch):
    x, _ = _write_cifar10(tmp_path / "src" / "cifar-10-batches-bin")
    archive = tmp_path / "data" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="corrupt"):  # the real md5 does not match the synthetic archive
        load_dataset("cifar10", data_dir=archive.parent)
    monkeypatch.setitem(cifar.RELEASES, "cifar10", dataclasses.replace(cifar.RELEASES["cifar10"], md5=md5))
    ds = load_dataset("cifar10", data_dir=archive.parent)
    assert torch.equal(ds.train_x, torch.from_numpy(x[:20]))
    assert (archive.parent / "cifar-10-batches-bin" / "test_batch.bin").exists()


def test_cifar_corrupt_and_truncated_files(tmp_path):
    _write_cifar10(tmp_path / "cifar-10-batches-bin")
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="data_batch_3.bin"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_without_network(tmp_path, monkeypatch):
    def offline(url, dest):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(cifar, "download", offline)
    with pytest.raises(DataError, match=r"cifar-10-binary\.tar\.gz") as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in str(err.value)
    assert str(tmp_path / "cifar-10-binary.tar.gz") in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="cifar-100-binary.tar.gz"):
        load_dataset("cifar100", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------- splits and batches


def test_search_split():
    a, b = search_split(101, 0.5, seed=3)
    assert len(a) == 50 and len(b) == 51 and a.dtype == torch.int64
    assert torch.equal(torch.cat([a, b]).sort().values, torch.arange(101))  # disjoint and covering
    a2, b2 = search_split(101, 0.5, seed=3)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(a, search_split(101, 0.5, seed=4)[0])
    assert not torch.equal(a, torch.arange(50))  # shuffled, not the first half
    assert len(search_split(100, 0.8)[0]) == 80
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(DataError):
            search_split(100, bad)


def _toy_images(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n)


def test_image_batches_plain_are_normalised_in_order():
    x, y = _toy_images()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    batches = ImageBatches(x, y, batch_size=16, mean=mean, std=std, shuffle=False, drop_last=False)
    out = list(batches.epoch(0))
    assert len(batches) == len(out) == 3 and [len(b[1]) for b in out] == [16, 16, 8]
    xs = torch.cat([b[0] for b in out])
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert xs.dtype == torch.float32 and torch.allclose(xs, expected, atol=1e-6)
    assert torch.equal(torch.cat([b[1] for b in out]), y)
    assert len(ImageBatches(x, y, batch_size=16, mean=(0,) * 3, std=(1,) * 3)) == 2  # drop_last


def test_image_batches_are_a_function_of_seed_epoch_index():
    x, y = _toy_images()
    kw = dict(batch_size=8, mean=(0.5,) * 3, std=(0.25,) * 3, augment=True, cutout=4)
    one = ImageBatches(x, y, seed=1, **kw)
    epoch0 = list(one.epoch(0))
    assert len(epoch0) == 5
    assert all(b.shape == (8, 3, 8, 8) and b.dtype == torch.float32 and t.dtype == torch.int64 for b, t in epoch0)
    assert sorted(torch.cat([t for _, t in epoch0]).tolist()) == list(range(40))  # a permutation
    again = list(ImageBatches(x, y, seed=1, **kw).epoch(0))  # a fresh object: nothing hidden
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch0, again))
    resumed = list(one.epoch(0, start=3))
    assert len(resumed) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(resumed, epoch0[3:]))
    epoch1 = list(one.epoch(1))
    assert not torch.equal(torch.cat([t for _, t in epoch0]), torch.cat([t for _, t in epoch1]))
    other_seed = list(ImageBatches(x, y, seed=2, **kw).epoch(0))
    assert not torch.equal(epoch0[0][1], other_seed[0][1])
    # same images in the same order, different epoch: only the augmentation differs
    fixed = dict(kw, shuffle=False)
    a0, a1 = next(ImageBatches(x, y, **fixed).epoch(0)), next(ImageBatches(x, y, **fixed).epoch(1))
    assert torch.equal(a0[1], a1[1]) and not torch.equal(a0[0], a1[0])


def test_augmentation_in_batches_crops_pads_and_cuts():
    x = torch.full((64, 3, 8, 8), 255, dtype=torch.uint8)
    # mean 0.5, std 0.5: image pixels -> 1, zero padding -> -1, cutout -> 0
    batches = ImageBatches(x, torch.zeros(64), batch_size=64, mean=(0.5,) * 3, std=(0.5,) * 3, augment=True, cutout=4)
    out, _ = next(batches.epoch(0))
    out = out.round(decimals=4)  # 255 * scale + shift is 1 only up to float rounding
    assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert (out == -1).any() and (out == 0).any()
    for img in out:
        holes = (img == 0).all(0).nonzero()  # (k, 2) rows, cols of the hole
        if len(holes):
            rows, cols = holes[:, 0], holes[:, 1]
            h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert len(holes) == h * w and h <= 4 and w <= 4  # one rectangle, at most the cutout side
    assert max(int((img == 0).all(0).sum()) for img in out) == 16  # some hole lies fully inside


def test_crop_flip_on_a_hand_made_image():
    img = torch.arange(1, 3 * 6 * 5 + 1, dtype=torch.int64).view(1, 3, 6, 5)
    x = img.repeat(4, 1, 1, 1)
    dy = torch.tensor([4, 4, 0, 8])
    dx = torch.tensor([4, 4, 0, 6])
    flip = torch.tensor([False, True, False, False])
    out = crop_flip(x, dy, dx, flip, pad=4)
    assert out.shape == x.shape
    assert torch.equal(out[0], img[0])  # centre crop, no flip: unchanged
    assert torch.equal(out[1], img[0].flip(-1))
    # offset 0: the image moves 4 down and 4 right, zeros come in from the top and left
    assert torch.equal(out[2, :, 4:, 4:], img[0, :, :2, :1])
    assert (out[2, :, :4] == 0).all() and (out[2, :, :, :4] == 0).all()
    # offset 8 / 6: the image moves 4 up and 2 left
    assert torch.equal(out[3, :, :2, :3], img[0, :, 4:, 2:]) and (out[3, :, 2:] == 0).all()


def test_cutout_zeroes_a_clipped_square():
    x = torch.ones(2, 3, 10, 10)
    out = cutout(x, torch.tensor([5, 0]), torch.tensor([5, 9]), size=4)
    assert (out[0, :, 3:7, 3:7] == 0).all() and int((out[0] == 0).sum()) == 3 * 16
    assert (out[1, :, 0:2, 7:10] == 0).all() and int((out[1] == 0).sum()) == 3 * 6  # clipped at the corner
    assert (x == 1).all()  # the input is untouched


def test_batches_reject_bad_arguments():
    x, y = _toy_images(4)
    with pytest.raises(DataError):
        ImageBatches(x.float(), y, batch_size=2, mean=(0,) * 3, std=(1,) * 3)
    with pytest.raises(DataError):
        ImageBatches(x, y, batch_size=8, mean=(0,) * 3, std=(1,) * 3)
    with pytest.raises(DataError):
        TextBatches(torch.arange(5), batch_size=4, bptt=3)
