"""Image sets stored as image files: ImageFolder trees, their .tar.gz, the embedded mini set.

An ImageFolder tree holds ``train/<class>/<file>`` and ``test/<class>/<file>``,
possibly under one top-level folder (``cifar10/train/...``). Classes are
sorted by name, files by name within a class. Images are decoded once with
Pillow (two processes when there are many) and cached as uint8 arrays in an
.npz keyed by the source's absolute path, size and modification time.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nsas.data.common import ImageDataset, cache_dir, cache_key, channel_stats, image_dataset, save_arrays
from nsas.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
SPLITS = ("train", "test")
CHUNK = 2048  # images per decode task
MINI_ASSET = Path(__file__).resolve().parents[1] / "assets" / "cifar10-mini.npz"
_CACHE_VERSION = 1  # bump when the cached layout changes


def decode_images(names: list[str], blobs: list[bytes]) -> np.ndarray:
    """Decode encoded images to one uint8 array (n, H, W, 3); all must share a size."""
    out = None
    for i, (name, blob) in enumerate(zip(names, blobs)):
        try:
            with Image.open(io.BytesIO(blob)) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot decode image {name}: {e}") from None
        if out is None:
            out = np.empty((len(blobs), *pixels.shape), np.uint8)
        elif pixels.shape != out.shape[1:]:
            raise DataError(
                f"image {name} is {pixels.shape[1]}x{pixels.shape[0]}, others are {out.shape[2]}x{out.shape[1]}; "
                f"resize the set to one size"
            )
        out[i] = pixels
    return out if out is not None else np.empty((0, 0, 0, 3), np.uint8)


class _Decoder:
    """Decodes chunks as they arrive: serially at first, in a 2-process pool once there are many."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = min(workers, os.cpu_count() or 1)
        self.pool: ProcessPoolExecutor | None = None
        self.results: list = []

    def submit(self, names: list[str], blobs: list[bytes]) -> None:
        if self.pool is None and self.workers > 1 and self.results:
            self.pool = ProcessPoolExecutor(self.workers)  # second chunk: worth the start-up
        if self.pool is None:
            self.results.append(decode_images(names, blobs))
        else:
            self.results.append(self.pool.submit(decode_images, names, blobs))

    def finish(self) -> np.ndarray:
        try:
            arrays = [r if isinstance(r, np.ndarray) else r.result() for r in self.results]
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
        if len({a.shape[1:] for a in arrays}) > 1:
            raise DataError(
                f"images come in several sizes {sorted({a.shape[1:3] for a in arrays})}; "
                f"resize the set to one size"
            )
        return np.concatenate(arrays) if arrays else np.empty((0, 0, 0, 3), np.uint8)


def _open_stream(path: Path):
    """A sequential reader of ``path``, decompressing gzip, bzip2 or xz by magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _field(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (name, data) for each regular file of a (compressed) tar archive, in archive order.

    A small sequential reader of the ustar/GNU/pax layout: 512-byte headers, data
    padded to 512 bytes. It reads each byte once, without ``tarfile``'s per-member
    objects, which cost about as much as decoding a 32x32 JPEG.

    Raises:
        DataError: the file is not a tar archive or is truncated.
    """
    def bad(why: str) -> DataError:
        return DataError(f"{path} is not a readable tar archive ({why}); give an ImageFolder tree or its .tar.gz")

    try:
        with _open_stream(path) as f:
            long_name = None
            while True:
                header = f.read(512)
                if len(header) < 512 or header == bytes(512):
                    if len(header) and header != bytes(512):
                        raise bad("truncated header")
                    return
                checksum = sum(header[:148]) + 8 * 32 + sum(header[156:])
                try:
                    size = int(_field(header[124:136]).strip() or "0", 8)
                    stored = int(_field(header[148:156]).strip(), 8)
                except ValueError:
                    raise bad("malformed header") from None
                if stored != checksum:
                    raise bad("header checksum mismatch")
                kind = header[156:157]
                data = f.read(size)
                if len(data) < size:
                    raise bad("truncated member")
                f.read(-size % 512)  # padding
                prefix = _field(header[345:500]) if header[257:263] == b"ustar\0" else ""
                name = long_name or (f"{prefix}/{_field(header[:100])}" if prefix else _field(header[:100]))
                long_name = None
                if kind == b"L":  # GNU long name of the next member
                    long_name = _field(data)
                elif kind == b"x":  # pax extended header: "len key=value\n" records
                    for record in data.decode("utf-8", "surrogateescape").splitlines():
                        key, _, value = record.partition(" ")[2].partition("=")
                        if key == "path":
                            long_name = value
                elif kind in (b"0", b"\0", b"7"):
                    yield name, data
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise bad(str(e)) from None


def _split_key(name: str) -> tuple[str, str, str, str] | None:
    """(top folder, split, class, file) of a member path; None for anything but split/class/image."""
    parts = Path(name).parts
    if len(parts) < 3 or parts[-3] not in SPLITS or parts[-1].startswith("."):
        return None
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2], parts[-1]


def _read_source(source: Path) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    """Member keys and decoded images (n, H, W, 3) of a folder or tar archive, in reading order."""
    keys, names, blobs, decoder = [], [], [], _Decoder()

    def add(name: str, read) -> None:
        key = _split_key(name)
        if key is None:
            return
        keys.append(key)
        names.append(name)
        blobs.append(read())
        if len(blobs) == CHUNK:
            decoder.submit(names[:], blobs[:])
            names.clear(), blobs.clear()

    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            add(path.relative_to(source).as_posix(), path.read_bytes)
    else:
        for name, data in tar_members(source):
            add(name, lambda: data)
    if blobs:
        decoder.submit(names, blobs)
    return keys, decoder.finish()


def _arrays(source: Path, keys: list[tuple[str, str, str, str]], images: np.ndarray) -> dict[str, np.ndarray]:
    """Sorted, labelled train/test arrays from member keys and images (n, H, W, 3)."""
    if len({k[0] for k in keys}) > 1:
        raise DataError(
            f"{source} holds several top-level folders; "
            f"expected train/<class>/* and test/<class>/* under at most one"
        )
    classes = sorted({k[2] for k in keys if k[1] == "train"})
    if not classes or not any(k[1] == "test" for k in keys):
        raise DataError(
            f"{source} has no train/<class>/<image> or no test/<class>/<image> files; "
            f"give an ImageFolder tree"
        )
    label = {c: i for i, c in enumerate(classes)}
    out: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in SPLITS:
        idx = sorted((i for i, k in enumerate(keys) if k[1] == split), key=lambda i: keys[i][2:])
        unknown = {keys[i][2] for i in idx} - set(label)
        if unknown:
            raise DataError(f"{source}: test classes {sorted(unknown)} have no train images")
        out[f"{split}_x"] = np.ascontiguousarray(images[idx].transpose(0, 3, 1, 2))  # (n, 3, H, W)
        out[f"{split}_y"] = np.array([label[keys[i][2]] for i in idx], np.int64)
    out["mean"], out["std"] = map(np.array, channel_stats(out["train_x"]))
    return out


def _source_key(source: Path) -> str:
    """Changes when the source (a file, or any file in a folder) changes."""
    if source.is_dir():
        stats = [p.stat() for p in source.rglob("*") if p.is_file()]
        newest = max((s.st_mtime_ns for s in stats), default=0)
        return cache_key(source, len(stats), sum(s.st_size for s in stats), newest, _CACHE_VERSION)
    s = source.stat()
    return cache_key(source, s.st_size, s.st_mtime_ns, _CACHE_VERSION)


def _cached(path: Path, name: str, build) -> ImageDataset:
    """Load the .npz cache at ``path``, building (and writing) it first if missing or unreadable."""
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return image_dataset(name, {k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt below
    arrays = build()
    save_arrays(path, **arrays)
    return image_dataset(name, arrays)


def load_imagefolder(spec: str, data_dir: Path) -> ImageDataset:
    """Load ``imagefolder:PATH`` (a folder or a .tar/.tar.gz of one), decoding once and caching."""
    source = Path(spec.split(":", 1)[1]).expanduser().resolve()
    if not source.exists():
        raise DataError(
            f"{source} does not exist; "
            f"imagefolder:PATH needs an ImageFolder tree (train/<class>/*, test/<class>/*) or a .tar.gz of one"
        )
    stem = source.name.split(".")[0] or "root"
    path = cache_dir(data_dir) / f"imagefolder-{stem}-{_source_key(source)}.npz"
    return _cached(path, spec, lambda: _arrays(source, *_read_source(source)))


def load_mini(data_dir: Path, asset: Path = MINI_ASSET) -> ImageDataset:
    """Load the embedded ``cifar10-mini`` set (JPEG bytes in the package), decoding once and caching."""
    if not asset.exists():
        raise DataError(
            f"{asset} is missing from the installed package; "
            f"reinstall nsas or run scripts/make_cifar10_mini.py"
        )
    s = asset.stat()
    path = cache_dir(data_dir) / f"cifar10-mini-{cache_key(asset, s.st_size, s.st_mtime_ns, _CACHE_VERSION)}.npz"
    return _cached(path, "cifar10-mini", lambda: _mini_arrays(asset))


def _mini_arrays(asset: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(asset, allow_pickle=False) as z:
            buf, offsets, labels = z["jpeg"], z["offsets"], z["labels"]
            num_train, classes = int(z["num_train"]), z["classes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{asset} is unreadable ({e}); reinstall nsas or run scripts/make_cifar10_mini.py") from None
    blobs = [buf[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]
    images = decode_images([f"{asset}[{i}]" for i in range(len(blobs))], blobs).transpose(0, 3, 1, 2)  # (n, 3, H, W)
    out = {"classes": classes, "train_x": np.ascontiguousarray(images[:num_train]), "train_y": labels[:num_train],
           "test_x": np.ascontiguousarray(images[num_train:]), "test_y": labels[num_train:]}
    out["mean"], out["std"] = map(np.array, channel_stats(out["train_x"]))
    return out
