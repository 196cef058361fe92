"""Image sets stored as image files: ImageFolder trees, their .tar.gz, the embedded mini set.

An ImageFolder tree holds ``train/<class>/<file>`` and ``test/<class>/<file>``,
possibly under one top-level folder (``cifar10/train/...``). Classes are
sorted by name, files by name within a class. Images are decoded once with
Pillow (two processes when there are many) and cached as uint8 arrays in an
.npz keyed by the source's absolute path and, for an archive, its size and
modification time, for a folder, the sorted (relative path, size, mtime_ns) of
its files. Archives are read with the standard library's :mod:`tarfile`:
on the 60,000-member CIFAR-10 JPEG archive it takes about 9 s where a
hand-written header parser took 2 s (2 busy CPU cores), once per data set,
next to the decoding, and it reads pax and base-256 sizes and hard links.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nsas.data.common import ImageDataset, cache_dir, cache_key, channel_stats, image_dataset, preparing, save_arrays
from nsas.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
SPLITS = ("train", "test")
CHUNK = 2048  # images per decode task
MAX_IMAGE_BYTES = 64 << 20  # an encoded image larger than this is refused before it is read
MAX_IMAGE_PIXELS = 1 << 24  # an image whose header declares more pixels (4096 x 4096) is refused before decoding
MAX_DECODED_BYTES = 4 << 30  # the decoded set (n x H x W x 3 bytes) may take at most this; NSAS_MAX_DECODED_BYTES
MINI_ASSET = Path(__file__).resolve().parents[1] / "assets" / "cifar10-mini.npz"
_CACHE_VERSION = 1  # bump when the cached layout changes


def decode_images(names: list[str], blobs: list[bytes]) -> np.ndarray:
    """Decode encoded images to one uint8 array (n, H, W, 3); all must share a size."""
    out = None
    for i, (name, blob) in enumerate(zip(names, blobs)):
        try:
            with Image.open(io.BytesIO(blob)) as im:  # reads the header only
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"image {name} declares {im.width}x{im.height} pixels, more than the "
                                    f"{MAX_IMAGE_PIXELS:,} nsas decodes; resize the set")
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


def tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (name, data) for each image file of a (compressed) tar archive, in archive order.

    Read with the standard library's :mod:`tarfile` (ustar, GNU and pax
    headers, base-256 sizes, gzip/bzip2/xz). Members that are not images of a
    ``split/class/`` folder are skipped without being read; a hard link yields
    the data of the member it links to. Before a member is read, its declared
    size is checked: negative, larger than an uncompressed archive, or larger
    than :data:`MAX_IMAGE_BYTES` is refused.

    Raises:
        DataError: the file is not a tar archive, is truncated, or declares an impossible member.
    """
    def bad(why: str) -> DataError:
        return DataError(f"{path} is not a readable tar archive ({why}); give an ImageFolder tree or its .tar.gz")

    archive_bytes = path.stat().st_size
    with open(path, "rb") as f:
        compressed = f.read(6).startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ"))  # gzip, bzip2, xz
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.size < 0 or (not compressed and member.size > archive_bytes):
                    raise bad(f"member {member.name} declares {member.size:,} bytes in a {archive_bytes:,}-byte file")
                if not (member.isfile() or member.islnk()) or _split_key(member.name) is None:
                    continue
                size = tar.getmember(member.linkname).size if member.islnk() else member.size
                if size > MAX_IMAGE_BYTES:
                    raise DataError(f"{path}: image {member.name} is {size:,} bytes, more than an image of "
                                    f"an ImageFolder may be ({MAX_IMAGE_BYTES:,}); remove it")
                with tar.extractfile(member) as f:
                    data = f.read()
                if len(data) != size:
                    raise bad(f"member {member.name} is truncated")
                yield member.name, data
    except KeyError as e:  # a hard link to a member that is not there
        raise bad(f"hard link to missing member {e}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise bad(str(e) or type(e).__name__) from None


def _split_key(name: str) -> tuple[str, str, str, str] | None:
    """(top folder, split, class, file) of a member path; None for anything but split/class/image."""
    parts = Path(name).parts
    if len(parts) < 3 or parts[-3] not in SPLITS or parts[-1].startswith("."):
        return None
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2], parts[-1]


def max_decoded_bytes() -> int:
    """:data:`MAX_DECODED_BYTES`, or ``$NSAS_MAX_DECODED_BYTES`` when set (a larger machine, a larger set)."""
    text = os.environ.get("NSAS_MAX_DECODED_BYTES", "").strip()
    if not text:
        return MAX_DECODED_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"NSAS_MAX_DECODED_BYTES must be a positive number of bytes, got {text[:40]!r}")
    return value


class _Budget:
    """Reads each image's header before it is decoded: every image must have the first one's size, and the
    decoded set (images x width x height x 3 bytes) may not pass :func:`max_decoded_bytes`. So a tar of one
    large image and many hard links to it (1 KB that decodes to gigabytes) is refused before decoding."""

    def __init__(self, source: Path) -> None:
        self.source, self.size, self.total, self.limit = source, None, 0, max_decoded_bytes()

    def check(self, name: str, blob: bytes) -> None:
        try:
            with Image.open(io.BytesIO(blob)) as im:  # the header only
                size = im.size
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot decode image {name}: {e}") from None
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise DataError(f"image {name} declares {size[0]}x{size[1]} pixels, more than the "
                            f"{MAX_IMAGE_PIXELS:,} nsas decodes; resize the set")
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise DataError(f"image {name} is {size[0]}x{size[1]}, others are {self.size[0]}x{self.size[1]}; "
                            "resize the set to one size")
        self.total += size[0] * size[1] * 3
        if self.total > self.limit:
            raise DataError(f"{self.source}: its images would decode to more than {self.limit:,} bytes "
                            f"({size[0]}x{size[1]} each; hard links count once per link); use a smaller set, or "
                            "raise NSAS_MAX_DECODED_BYTES")


def _read_source(source: Path) -> tuple[list[tuple[str, str, str, str]], np.ndarray]:
    """Member keys and decoded images (n, H, W, 3) of a folder or tar archive, in reading order."""
    keys, names, blobs, decoder, budget = [], [], [], _Decoder(), _Budget(source)

    def add(name: str, read) -> None:
        key = _split_key(name)
        if key is None:
            return
        blob = read()
        budget.check(name, blob)
        keys.append(key)
        names.append(name)
        blobs.append(blob)
        if len(blobs) == CHUNK:
            decoder.submit(names[:], blobs[:])
            names.clear(), blobs.clear()

    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            name = path.relative_to(source).as_posix()
            if _split_key(name) is not None and path.stat().st_size > MAX_IMAGE_BYTES:
                raise DataError(f"image {path} is {path.stat().st_size:,} bytes, more than an image of an "
                                f"ImageFolder may be ({MAX_IMAGE_BYTES:,}); remove it")
            add(name, path.read_bytes)
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
    """Changes when the source changes: an archive's size or mtime, a folder's sorted (path, size, mtime_ns).

    So moving a file to another class folder, renaming a class folder, or
    replacing a file (even by one of the same size) gives another key.
    """
    if source.is_dir():
        files = sorted((p.relative_to(source).as_posix(), p.stat()) for p in source.rglob("*") if p.is_file())
        return cache_key(source, _CACHE_VERSION, *(f"{name}:{s.st_size}:{s.st_mtime_ns}" for name, s in files))
    s = source.stat()
    return cache_key(source, s.st_size, s.st_mtime_ns, _CACHE_VERSION)


def _cached(path: Path, name: str, build) -> ImageDataset:
    """Load the .npz cache at ``path``, building (and writing) it first if missing or unreadable.

    One process at a time builds it (:func:`~nsas.data.common.preparing`); the others then read it.
    """
    with preparing(path.parent):
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                if valid_arrays(arrays):
                    return image_dataset(name, arrays)
            except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error):
                pass  # an empty, truncated or damaged cache is rebuilt below
        arrays = build()
        save_arrays(path, **arrays)
    return image_dataset(name, arrays)


def valid_arrays(arrays: dict[str, np.ndarray]) -> bool:
    """Whether a decoded cache holds what its builder writes: uint8 images (n, 3, H, W), one int label per
    image in ``0..classes - 1``, three finite channel statistics. A cache is an input like any other file (it
    may be damaged, stale or edited); one that fails is rebuilt from the source."""
    try:
        classes = arrays["classes"]
        if classes.ndim != 1 or not len(classes):
            return False
        for split in ("train", "test"):
            x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] != 3 or y.ndim != 1 or len(y) != len(x):
                return False
            if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
                return False
        if arrays["train_x"].shape[1:] != arrays["test_x"].shape[1:] or not len(arrays["train_x"]):
            return False
        stats = np.concatenate([np.asarray(arrays["mean"], float).ravel(), np.asarray(arrays["std"], float).ravel()])
        return stats.shape == (6,) and bool(np.isfinite(stats).all()) and bool((stats[3:] > 0).all())
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


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
