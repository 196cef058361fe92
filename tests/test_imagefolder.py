"""Image folders and their archives: tar variants, hostile members, cache keys and damaged caches."""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nsas.data import imagefolder, load_dataset
from nsas.errors import DataError

TOP = "set"


def _bmp(value: int, size: tuple[int, int] = (4, 3)) -> bytes:
    """An uncompressed image: every value gives a file of the same size."""
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, format="BMP")
    return buf.getvalue()


def _tree(root: Path) -> dict[str, bytes]:
    """train/{a,b}/0.bmp and test/{a,b}/0.bmp with distinct pixel values; returns member name -> bytes."""
    files = {f"{TOP}/{split}/{cls}/0.bmp": _bmp(10 * i + 20 * j)
             for i, split in enumerate(("train", "test")) for j, cls in enumerate(("a", "b"))}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _tar(files: dict[str, bytes], path: Path, fmt: int = tarfile.GNU_FORMAT, mode: str = "w") -> bytearray:
    with tarfile.open(path, mode, format=fmt) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return bytearray(path.read_bytes())


def _set_size_field(raw: bytearray, header: int, field: bytes) -> None:
    """Overwrite the 12-byte size field of the header at ``header`` and fix its checksum."""
    raw[header + 124:header + 136] = field
    raw[header + 148:header + 156] = b" " * 8
    raw[header + 148:header + 156] = b"%06o\0 " % sum(raw[header:header + 512])


def _load(source: Path, data_dir: Path):
    return load_dataset(f"imagefolder:{source}", data_dir=data_dir)


def test_base256_and_pax_sizes_and_hard_links(tmp_path):
    files = _tree(tmp_path / "tree")
    reference = _load(tmp_path / "tree", tmp_path / "d")
    # base-256 size field (GNU), as written for members over 8 GiB
    raw = _tar(files, tmp_path / "plain.tar")
    first = len(files[f"{TOP}/train/a/0.bmp"])
    _set_size_field(raw, 0, b"\x80" + first.to_bytes(11, "big"))
    (tmp_path / "b256.tar").write_bytes(raw)
    assert torch.equal(_load(tmp_path / "b256.tar", tmp_path / "d").train_x, reference.train_x)
    # pax "size" record overriding a zero in the ustar header
    with tarfile.open(tmp_path / "pax.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {"size": str(len(data))}
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray((tmp_path / "pax.tar").read_bytes())
    _set_size_field(raw, 1024, b"00000000000\0")  # the first member's own header follows its pax header
    (tmp_path / "pax.tar").write_bytes(raw)
    assert torch.equal(_load(tmp_path / "pax.tar", tmp_path / "d").train_x, reference.train_x)
    # a hard link: test/b/0.bmp is the same file as train/b/0.bmp
    linked = tmp_path / "linked"
    _tree(linked)
    os.unlink(linked / TOP / "test" / "b" / "0.bmp")
    os.link(linked / TOP / "train" / "b" / "0.bmp", linked / TOP / "test" / "b" / "0.bmp")
    with tarfile.open(tmp_path / "linked.tar.gz", "w:gz") as tar:
        tar.add(linked / TOP, arcname=TOP)
    assert any(m.islnk() for m in tarfile.open(tmp_path / "linked.tar.gz"))
    ds = _load(tmp_path / "linked.tar.gz", tmp_path / "d")
    assert ds.test_y.tolist() == [0, 1] and torch.equal(ds.test_x[1], ds.train_x[1])


def test_impossible_member_sizes_are_refused_in_one_line(tmp_path):
    files = _tree(tmp_path / "tree")
    raw = _tar(files, tmp_path / "neg.tar")
    _set_size_field(raw, 0, b"\xff" * 11 + b"\xf0")  # base-256 for -16
    (tmp_path / "neg.tar").write_bytes(raw)
    with pytest.raises(DataError, match=r"neg.tar .*declares -16 bytes"):
        _load(tmp_path / "neg.tar", tmp_path / "d")
    raw = _tar(files, tmp_path / "big.tar")
    _set_size_field(raw, 0, b"77777777777\0")  # 8 GiB in a 10 KiB file
    (tmp_path / "big.tar").write_bytes(raw)
    with pytest.raises(DataError, match=r"big.tar .*declares 8,589,934,591 bytes in a 10,240-byte file"):
        _load(tmp_path / "big.tar", tmp_path / "d")


def test_large_members_are_not_read_into_memory(tmp_path, monkeypatch):
    files = _tree(tmp_path / "tree")
    big = 32 << 20
    files[f"{TOP}/train/a/notes.bin"] = bytes(big)  # not an image: skipped without being read
    _tar(files, tmp_path / "notes.tar.gz", mode="w:gz")
    tracemalloc.start()
    try:
        ds = _load(tmp_path / "notes.tar.gz", tmp_path / "d")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.train_x.shape == (2, 3, 4, 3)
    assert peak < big // 2
    monkeypatch.setattr(imagefolder, "MAX_IMAGE_BYTES", 20)  # every PNG here is larger
    with pytest.raises(DataError, match=r"image set/train/a/0.bmp is \d+ bytes, more than"):
        _load(tmp_path / "notes.tar.gz", tmp_path / "d2")
    with pytest.raises(DataError, match=r"0.bmp is \d+ bytes, more than"):
        _load(tmp_path / "tree", tmp_path / "d2")


def test_absurd_decoded_sizes_are_refused_before_decoding(tmp_path):
    files = _tree(tmp_path / "tree")
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, format="PNG")  # 25 million pixels in a few KiB
    files[f"{TOP}/train/a/1.png"] = buf.getvalue()
    _tar(files, tmp_path / "bomb.tar")
    with pytest.raises(DataError, match=r"1.png declares 5000x5000 pixels"):
        _load(tmp_path / "bomb.tar", tmp_path / "d")


def test_cache_follows_moves_renames_and_same_size_replacements(tmp_path):
    # Each change keeps the file count, the total size and the newest mtime (the old cache key).
    root = tmp_path / "tree"
    files = {"train/a/0.bmp": 0, "train/b/0.bmp": 10, "train/b/1.bmp": 20, "test/a/0.bmp": 30, "test/b/0.bmp": 40}
    for name, value in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_bmp(value))
        os.utime(root / name, ns=(10**18, 10**18))
    assert _load(root, tmp_path / "d").train_y.tolist() == [0, 1, 1]
    (root / "train/b/1.bmp").rename(root / "train/a/1.bmp")  # move a file to another class
    moved = _load(root, tmp_path / "d")
    assert moved.train_y.tolist() == [0, 0, 1] and int(moved.train_x[1].flatten()[0]) == 20
    (root / "train/b").rename(root / "train/c")  # rename a class folder
    (root / "test/b").rename(root / "test/c")
    assert _load(root, tmp_path / "d").classes == ("a", "c")
    replacement = tmp_path / "other.bmp"  # a file of the same size, with its own (older) mtime ...
    replacement.write_bytes(_bmp(200))
    os.utime(replacement, ns=(10**18 - 10**12, 10**18 - 10**12))
    assert replacement.stat().st_size == (root / "train/a/0.bmp").stat().st_size
    replacement.rename(root / "train/a/0.bmp")  # ... moved over a training image, as `mv` does
    replaced = _load(root, tmp_path / "d")
    assert int(replaced.train_x[0].flatten()[0]) == 200


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_cache_files_are_rebuilt(tmp_path, damage):
    root = tmp_path / "tree"
    _tree(root)
    ds = _load(root, tmp_path / "d")
    (cache,) = (tmp_path / "d" / "cache").glob("imagefolder-*.npz")
    cache.write_bytes(b"" if damage == "empty" else cache.read_bytes()[: cache.stat().st_size // 2])
    again = _load(root, tmp_path / "d")
    assert torch.equal(again.train_x, ds.train_x) and again.classes == ds.classes
    with np.load(cache) as z:  # rewritten whole
        assert np.array_equal(z["train_y"], ds.train_y.numpy())
    assert sorted(p.name for p in cache.parent.iterdir()) == [".nsas.lock", cache.name]  # no temporary left


def _build_in_child(root: Path, data_dir: Path, log: Path, out: Path) -> None:
    import time

    real = imagefolder._arrays

    def slow_build(*args):
        with open(log, "a") as f:
            f.write(f"build {os.getpid()}\n")
        time.sleep(0.5)  # widens the window in which a second process could build too
        return real(*args)

    imagefolder._arrays = slow_build
    code = 0
    try:
        ds = _load(root, data_dir)
        np.save(out, ds.train_x.numpy())
    except BaseException:  # noqa: BLE001 - the test sees the missing output
        code = 1
    os._exit(code)


def test_two_processes_preparing_one_folder_take_turns(tmp_path):
    import multiprocessing

    _tree(tmp_path / "tree")
    ctx = multiprocessing.get_context("fork")
    log = tmp_path / "builds.log"
    procs = [ctx.Process(target=_build_in_child, args=(tmp_path / "tree", tmp_path / "d", log, tmp_path / f"{i}.npy"))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().splitlines()) == 1  # the second process read the first one's cache
    assert np.array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    assert not [p for p in (tmp_path / "d" / "cache").iterdir() if p.name.endswith(".tmp")]
