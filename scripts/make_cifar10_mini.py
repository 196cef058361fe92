"""Build nsas/assets/cifar10-mini.npz, the embedded default data set.

    python scripts/make_cifar10_mini.py CIFAR10-JPEG.tar.gz

Selection rule: from an ImageFolder archive of CIFAR-10 (cifar10/{train,test}/<class>/*.jpg),
take for every class (sorted by name) the first 500 train and the first 100
test files in sorted file-name order. The original JPEG bytes are kept
unchanged (deflated .npz): one uint8 buffer plus int64 offsets, int64 labels, the class names,
and the provenance (source sha256, rule) as plain unicode arrays, so the file
loads with ``allow_pickle=False``. Running it twice gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RULE = (
    "per class (sorted by name): first {train} train and first {test} test files "
    "in sorted file-name order; JPEG bytes unchanged"
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def select(source: Path, per_class: dict[str, int]) -> tuple[list[str], dict[str, bytes], list[str]]:
    """Chosen member names (train first, then test), their bytes, and the class names."""
    with tarfile.open(source) as tar:
        images = (m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png")))
        members = {m.name: m for m in images}
        by_key: dict[tuple[str, str], list[str]] = {}
        for name in members:
            split, cls = Path(name).parts[-3:-1]
            by_key.setdefault((split, cls), []).append(name)
        classes = sorted({cls for split, cls in by_key if split == "train"})
        chosen = []
        for split, n in per_class.items():
            for cls in classes:
                files = sorted(by_key.get((split, cls), []), key=lambda s: Path(s).name)
                if len(files) < n:
                    raise SystemExit(f"{source}: {split}/{cls} has {len(files)} files, need {n}")
                chosen += files[:n]
        data = {name: tar.extractfile(members[name]).read() for name in chosen}
    return chosen, data, classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="cifar10-jpeg.tar.gz (ImageFolder archive)")
    parser.add_argument("--out", type=Path, default=ROOT / "nsas" / "assets" / "cifar10-mini.npz")
    parser.add_argument("--train", type=int, default=500, help="train images per class")
    parser.add_argument("--test", type=int, default=100, help="test images per class")
    args = parser.parse_args()

    chosen, data, classes = select(args.source, {"train": args.train, "test": args.test})
    blobs = [data[name] for name in chosen]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    labels = np.array([classes.index(Path(n).parts[-2]) for n in chosen], np.int64)
    digest = sha256(args.source)
    rule = RULE.format(train=args.train, test=args.test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(  # the JPEG headers repeat: deflate makes 5.6 MB into 1.8 MB
        buf,
        jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=offsets,
        labels=labels,
        num_train=np.array(args.train * len(classes), np.int64),
        classes=np.array(classes),
        source_name=np.array(args.source.name),
        source_sha256=np.array(digest),
        rule=np.array(rule),
    )
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {sha256(args.out)})")
    print(f"cifar10-mini: {args.train * len(classes)} train / {args.test * len(classes)} test images, "
          f"{len(classes)} classes, from {args.source.name} (sha256 {digest})")
    print(f"selection rule: {rule}")


if __name__ == "__main__":
    main()
