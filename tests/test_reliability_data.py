"""Issue 22: image data that amplifies or lies, through ``nsas.cli.main`` (``nsas search --dataset
imagefolder:...``): a tar of one image and many hard links to it has a bound on what it decodes to, and a
decode cache is checked like an input (one whose labels are out of range is rebuilt, not trained on)."""

from __future__ import annotations

import io
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from nsas.cli import main

SEARCH = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--channels", "4", "--cells", "1",
          "--eval-batches", "1", "--select-rounds", "1", "--select-samples", "2", "--select-by", "score",
          "--device", "cpu"]


def _linked_tar(path, side: int, links: int) -> None:
    """train/ and test/ each: one side x side PNG and ``links`` hard links to it."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (30, 60, 90)).save(buf, "PNG")
    png = buf.getvalue()
    with tarfile.open(path, "w") as tar:
        for split in ("train", "test"):
            for c in ("a", "b"):
                info = tarfile.TarInfo(f"{split}/{c}/0.png")
                info.size = len(png)
                tar.addfile(info, io.BytesIO(png))
                for i in range(links):
                    link = tarfile.TarInfo(f"{split}/{c}/l{i}.png")
                    link.type, link.linkname = tarfile.LNKTYPE, f"{split}/{c}/0.png"
                    tar.addfile(link)


def _one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("nsas:")]
    assert len(lines) == 1 and lines[0].startswith("nsas: error: ") and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_hard_links_to_one_image_count_against_the_decoded_bound(capsys, tmp_path, monkeypatch):
    tar = tmp_path / "links.tar"
    _linked_tar(tar, 256, 30)  # 124 images of 256 x 256: 24 MB decoded from a 10 KB archive
    assert tar.stat().st_size < 200_000
    monkeypatch.setenv("NSAS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NSAS_MAX_DECODED_BYTES", str(4 << 20))
    code = main(["search", "--out", str(tmp_path / "run"), *SEARCH, "--dataset", f"imagefolder:{tar}"])
    _one_line(capsys, code, str(tar), "more than 4,194,304 bytes", "hard links")
    assert not list((tmp_path / "data").rglob("*.npz"))  # nothing decoded was cached


def test_the_default_bound_refuses_gigabytes_before_decoding_them(capsys, tmp_path, monkeypatch):
    tar = tmp_path / "links.tar"
    _linked_tar(tar, 4000, 60)  # 244 images of 4000 x 4000: 11.7 GB decoded
    monkeypatch.setenv("NSAS_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("NSAS_MAX_DECODED_BYTES", raising=False)
    decoded = []
    import nsas.data.imagefolder as imagefolder

    real = imagefolder.decode_images
    monkeypatch.setattr(imagefolder, "decode_images", lambda names, blobs: decoded.append(len(blobs)) or
                        real(names, blobs))
    start = time.perf_counter()
    code = main(["search", "--out", str(tmp_path / "run"), *SEARCH, "--dataset", f"imagefolder:{tar}"])
    _one_line(capsys, code, "more than 4,294,967,296 bytes")
    assert decoded == [] and time.perf_counter() - start < 60


@pytest.mark.parametrize("poison", ["labels-high", "labels-negative", "labels-short", "nan-mean"])
def test_a_poisoned_decode_cache_is_rebuilt_not_trained_on(capsys, tmp_path, monkeypatch, poison):
    folder = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for c in ("x", "y"):
            (folder / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / split / c / f"{i}.png")
    monkeypatch.setenv("NSAS_DATA", str(tmp_path / "data"))
    argv = ["search", *SEARCH, "--dataset", f"imagefolder:{folder}"]
    assert main([*argv, "--out", str(tmp_path / "first")]) == 0
    capsys.readouterr()
    (cache,) = (tmp_path / "data" / "cache").glob("imagefolder-imgs-*.npz")
    with np.load(cache) as z:
        arrays = {k: z[k] for k in z.files}
    good = arrays["train_y"].copy()
    if poison == "labels-high":
        arrays["train_y"] = arrays["train_y"] + 1000
    elif poison == "labels-negative":
        arrays["train_y"] = arrays["train_y"] - 5
    elif poison == "labels-short":
        arrays["train_y"] = arrays["train_y"][:-1]
    else:
        arrays["mean"] = np.array([np.nan, 0.5, 0.5])
    np.savez(cache, **arrays)
    code = main([*argv, "--out", str(tmp_path / "second")])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    with np.load(cache) as z:
        assert np.array_equal(z["train_y"], good) and np.isfinite(z["mean"]).all()


def test_a_channel_that_never_varies_does_not_make_the_loss_nan(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "blue"
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("test", 2)):
        for c in ("x", "y"):
            (folder / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                pixels[..., 2] = 200  # the blue channel is the same everywhere: its std is 0
                Image.fromarray(pixels).save(folder / split / c / f"{i}.png")
    monkeypatch.setenv("NSAS_DATA", str(tmp_path / "data"))
    code = main(["search", *SEARCH, "--dataset", f"imagefolder:{folder}", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err[-2000:]
    from nsas.data import load_dataset

    assert load_dataset(f"imagefolder:{folder}").std[2] == pytest.approx(1 / 255)
