"""CIFAR-10 and CIFAR-100 from the official *binary* releases (no pickle).

Each record is a fixed-size run of bytes: one label byte (CIFAR-10) or a coarse
and a fine label byte (CIFAR-100), then 3072 pixel bytes: the red, green and
blue 32x32 planes in row-major order. So a file of n records is an (n, 3073)
or (n, 3074) uint8 array, and the pixels reshape straight to (n, 3, 32, 32).
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsas.atomic import atomic_write
from nsas.data.common import ImageDataset, channel_stats, image_dataset, preparing
from nsas.errors import DataError

CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class CifarRelease:
    """Where one binary release lives and how its records are laid out."""

    url: str
    md5: str
    folder: str  # folder the archive extracts to
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str  # class names, one a line
    label_bytes: int  # bytes before the pixels
    label_index: int  # which of them is the label we use

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[1]


# md5s as published on the CIFAR page
RELEASES = {
    "cifar10": CifarRelease(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        md5="c32a1d4ab5d03f1284b67883e8d87530",
        folder="cifar-10-batches-bin",
        train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test_files=("test_batch.bin",),
        meta_file="batches.meta.txt",
        label_bytes=1,
        label_index=0,
    ),
    "cifar100": CifarRelease(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        md5="03b5dce01913d631647c71ecec9e9cb8",
        folder="cifar-100-binary",
        train_files=("train.bin",),
        test_files=("test.bin",),
        meta_file="fine_label_names.txt",
        label_bytes=2,
        label_index=1,  # fine labels (100 classes)
    ),
}

PIXELS = 3 * 32 * 32


def read_records(path: Path, release: CifarRelease) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 3, 32, 32) uint8 and int64 labels (n,) of one binary file."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = release.label_bytes + PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataError(
            f"{path} is not a CIFAR binary file ({raw.size} bytes, not a multiple of {record}); "
            f"delete it and download again"
        )
    rows = raw.reshape(-1, record)
    return rows[:, release.label_bytes :].reshape(-1, 3, 32, 32), rows[:, release.label_index].astype(np.int64)


def _class_names(folder: Path, name: str, release: CifarRelease) -> tuple[str, ...]:
    meta = folder / release.meta_file
    if meta.exists():
        return tuple(line.strip() for line in meta.read_text().splitlines() if line.strip())
    if name == "cifar10":
        return CIFAR10_CLASSES
    raise DataError(f"{meta} is missing; extract {release.archive} again from {release.url}")


def parse_folder(folder: Path, name: str) -> ImageDataset:
    """The data set in an extracted binary release folder."""
    release = RELEASES[name]
    parts = {}
    for split, files in (("train", release.train_files), ("test", release.test_files)):
        xs, ys = zip(*(read_records(folder / f, release) for f in files))
        parts[f"{split}_x"], parts[f"{split}_y"] = np.concatenate(xs), np.concatenate(ys)
    classes = _class_names(folder, name, release)
    top = max(parts["train_y"].max(), parts["test_y"].max())
    if top >= len(classes):
        raise DataError(
            f"{folder} has label {top} but only {len(classes)} class names; "
            f"extract {release.archive} again"
        )
    mean, std = channel_stats(parts["train_x"])
    return image_dataset(name, dict(parts, classes=np.array(classes), mean=np.array(mean), std=np.array(std)))


def download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` (through a uniquely named temporary file, so no half file is left)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as response, atomic_write(dest) as f:
        shutil.copyfileobj(response, f)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _extract(archive: Path, data_dir: Path, release: CifarRelease) -> None:
    """Extract only the expected regular files of the release (no path tricks)."""
    wanted = {f"{release.folder}/{f}" for f in (*release.train_files, *release.test_files, release.meta_file)}
    out = data_dir / release.folder
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name in wanted:
                    with tar.extractfile(member) as src, atomic_write(out / Path(member.name).name) as dst:
                        shutil.copyfileobj(src, dst)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive} is corrupt ({e}); delete it and download again from {release.url}") from None


def load_cifar(name: str, data_dir: Path, download_missing: bool = True) -> ImageDataset:
    """Load ``cifar10`` or ``cifar100`` from ``data_dir``, downloading it if missing.

    Args:
        name: ``cifar10`` or ``cifar100``.
        data_dir: folder holding the archive and the extracted release folder.
        download_missing: fetch the archive when neither it nor the folder is there.

    Raises:
        DataError: the archive is missing and cannot be fetched, or is corrupt.
    """
    release = RELEASES[name]
    folder = data_dir / release.folder
    needed = (*release.train_files, *release.test_files)
    if not all((folder / f).exists() for f in needed):
        with preparing(data_dir):  # one process downloads and extracts; the others wait, then read
            _prepare(name, data_dir, release, download_missing)
    return parse_folder(folder, name)


def _prepare(name: str, data_dir: Path, release: CifarRelease, download_missing: bool) -> None:
    """Download (if allowed) and extract the release into ``data_dir``, unless another process just did."""
    folder = data_dir / release.folder
    needed = (*release.train_files, *release.test_files)
    if not all((folder / f).exists() for f in needed):
        archive = data_dir / release.archive
        how = f"download {release.url} (see {CIFAR_PAGE}) and put it at {archive}"
        if not archive.exists():
            if not download_missing:
                raise DataError(f"{name} is missing: {how}")
            try:
                download(release.url, archive)
            except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
                raise DataError(f"cannot download {name} ({e}): {how}") from None
        digest = _md5(archive)
        if digest != release.md5:
            raise DataError(f"{archive} is corrupt (md5 {digest}, expected {release.md5}): delete it and {how}")
        _extract(archive, data_dir, release)
        missing = [f for f in needed if not (folder / f).exists()]
        if missing:
            raise DataError(f"{archive} lacks {', '.join(missing)}: delete it and {how}")
