"""Issue 22: what `nsas rank` and `nsas truth import` write and print, through ``nsas.cli.main``: never over an
input, always whole (``nsas.atomic``), no more worker processes than cores, and with ``--fuse`` the best
architectures by the fused score."""

from __future__ import annotations

import collections
import csv
import os
import random

import pytest
import torch

import nsas.atomic
from nsas.cli import main
from nsas.spaces import get_space
from tiny import tiny_run

SPACE = get_space("nb201")
ARCHS = [str(SPACE.sample(random.Random(i))) for i in range(8)]
PROXY_FLAGS = ("--proxies", "count", "--proxy-channels", "4", "--proxy-cells", "1", "--proxy-batch-size", "8")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished search run of a tiny nb201 supernet."""
    return tiny_run(tmp_path_factory.mktemp("search"))


@pytest.fixture()
def archs_file(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(ARCHS) + "\n")
    return path


def _one_line(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("nsas: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- rank
def test_rank_workers_beyond_the_cores_are_capped_with_a_warning(capsys, run_dir, archs_file, tmp_path, monkeypatch):
    assert main(["rank", str(run_dir), "--archs", str(archs_file), "--out", str(tmp_path / "one.csv"),
                 "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    started = []
    import concurrent.futures

    real = concurrent.futures.ProcessPoolExecutor

    def counting_pool(workers=None, *args, **kwargs):
        started.append(workers)
        return real(workers, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", counting_pool)
    code = main(["rank", str(run_dir), "--archs", str(archs_file), "--workers", "64", "--out",
                 str(tmp_path / "capped.csv"), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: --workers 64 is more than the 1 CPU core here; using 1" in err
    assert started == []  # one core: scored in this process, no pool
    assert _rows(tmp_path / "capped.csv") == _rows(tmp_path / "one.csv")


def test_rank_fuse_prints_the_best_by_the_fused_score(capsys, run_dir, archs_file, tmp_path):
    out = tmp_path / "fused.csv"
    code = main(["rank", str(run_dir), "--archs", str(archs_file), "--out", str(out), "--device", "cpu", "--quiet",
                 *PROXY_FLAGS, "--fuse", "--weights", "params=1,loss=0.2"])
    printed = capsys.readouterr().out
    assert code == 0
    rows = _rows(out)
    lines = printed.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("top 5 by"))
    assert lines[head] == "top 5 by fused score (higher is better):"
    shown = [line.split()[-1] for line in lines[head + 1:head + 6]]
    by_score = sorted(rows, key=lambda r: -float(r["score"]))
    assert shown == [r["arch"] for r in by_score[:5]]
    shown_scores = [float(line.split("score ")[1].split()[0]) for line in lines[head + 1:head + 6]]
    assert shown_scores == sorted(shown_scores, reverse=True)


@pytest.mark.parametrize("target", ["checkpoint.pt", "config.yaml", "metrics.jsonl", "archs"])
def test_rank_out_never_replaces_an_input(capsys, run_dir, archs_file, tmp_path, target):
    path = archs_file if target == "archs" else run_dir / target
    before = path.read_bytes()
    code = main(["rank", str(run_dir), "--archs", str(archs_file), "--out", str(path), "--device", "cpu", "--quiet"])
    _one_line(capsys, code, str(path), "input")
    assert path.read_bytes() == before


def test_rank_fit_on_file_is_not_overwritten_by_the_weights(capsys, run_dir, archs_file, tmp_path):
    truth = tmp_path / "s.fusion.json"  # the weights of --out s.csv would go here
    truth.write_text('[' + ",".join(f'{{"arch": "{a}", "acc": {90 - i}}}' for i, a in enumerate(ARCHS)) + "]")
    before = truth.read_bytes()
    code = main(["rank", str(run_dir), "--archs", str(archs_file), "--out", str(tmp_path / "s.csv"), "--device",
                 "cpu", "--quiet", *PROXY_FLAGS, "--fuse", "--fit-on", str(truth)])
    _one_line(capsys, code, "weights file", str(truth))
    assert truth.read_bytes() == before


def _fail_the_rename(monkeypatch):
    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nsas.atomic.os, "replace", broken)


def test_rank_out_is_written_atomically(capsys, run_dir, archs_file, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    out.write_text("the old scores\n")
    _fail_the_rename(monkeypatch)
    code = main(["rank", str(run_dir), "--archs", str(archs_file), "--out", str(out), "--device", "cpu", "--quiet"])
    _one_line(capsys, code, "No space left on device", str(out))
    assert out.read_text() == "the old scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archs.txt", "scores.csv"]  # no temporary left


# ---------------------------------------------------------------- truth import
def _nb201_file(path, archs, accs) -> None:
    def result(acc):
        return {"all_results": {("cifar10", 777): {"epochs": 200, "eval_acc1es": {"ori-test@199": acc}}}}

    infos = collections.OrderedDict((i, {"full": result(a)}) for i, a in enumerate(accs))
    torch.save({"meta_archs": list(archs), "arch2infos": infos}, path)


def test_truth_import_out_never_replaces_its_source(capsys, tmp_path):
    source = tmp_path / "NAS-Bench-201.pth"
    _nb201_file(source, ARCHS[:3], [91.0, 90.0, 89.0])
    before = source.read_bytes()
    _one_line(capsys, main(["truth", "import", str(source), "--out", str(source)]), str(source), "input")
    assert source.read_bytes() == before
    nats = tmp_path / "NATS-tss-v1_0-simple"
    nats.mkdir()
    import bz2
    import pickle

    (nats / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"meta_archs": ARCHS[:1]})))
    before = (nats / "meta.pickle.pbz2").read_bytes()
    _one_line(capsys, main(["truth", "import", str(nats), "--out", str(nats / "meta.pickle.pbz2")]), "input")
    assert (nats / "meta.pickle.pbz2").read_bytes() == before


def test_truth_import_out_is_written_atomically(capsys, tmp_path, monkeypatch):
    source = tmp_path / "nb201.pth"
    _nb201_file(source, ARCHS[:3], [91.0, 90.0, 89.0])
    out = tmp_path / "truth.csv"
    out.write_text("arch,test_acc\n")
    _fail_the_rename(monkeypatch)
    _one_line(capsys, main(["truth", "import", str(source), "--out", str(out)]), "No space left on device", str(out))
    assert out.read_text() == "arch,test_acc\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb201.pth", "truth.csv"]


def test_truth_import_an_accuracy_that_is_not_a_number_names_the_file(capsys, tmp_path):
    source = tmp_path / "nb201-na.pth"
    _nb201_file(source, ARCHS[:3], [91.0, "n/a", 89.0])
    _one_line(capsys, main(["truth", "import", str(source), "--out", str(tmp_path / "t.csv")]),
              str(source), "'n/a'", "architecture 1", "not a number")
    assert not (tmp_path / "t.csv").exists()


def test_truth_import_drops_nan_infinite_and_impossible_accuracies_with_a_count(capsys, tmp_path):
    source = tmp_path / "nb201-nan.pth"
    _nb201_file(source, ARCHS[:6], [91.0, float("nan"), 89.0, float("inf"), 140.0, 87.5])
    out = tmp_path / "t.csv"
    assert main(["truth", "import", str(source), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "dropped 3 of 6 architectures" in captured.err and "2 NaN or infinite, 1 outside [0, 100]" in captured.err
    assert "3 architectures" in captured.out
    assert [(r["arch"], float(r["test_acc"])) for r in _rows(out)] == [(ARCHS[0], 91.0), (ARCHS[2], 89.0),
                                                                      (ARCHS[5], 87.5)]


@pytest.mark.parametrize("bad", ["rm -rf /", '=HYPERLINK("http://x")', 42, "|bogus~0|",
                                 ARCHS[0].replace("|+|", "|+|", 1)[:-1], "x" * 10_000_000])
def test_truth_import_refuses_entries_that_are_not_canonical_architectures(capsys, tmp_path, bad):
    source = tmp_path / "nb201-bad.pth"
    _nb201_file(source, [ARCHS[0], bad, ARCHS[2]], [91.0, 90.0, 89.0])
    err = _one_line(capsys, main(["truth", "import", str(source), "--out", str(tmp_path / "t.csv")]),
                    str(source), "1 of its 3 architectures are not canonical")
    assert len(err) < 500
    assert not (tmp_path / "t.csv").exists()


def test_truth_import_refuses_a_bz2_bomb_with_bounded_memory(capsys, tmp_path, monkeypatch):
    import bz2
    import tracemalloc

    import nsas.nasbench

    folder = tmp_path / "NATS-tss-v1_0-bomb-simple"
    folder.mkdir()
    compressor = bz2.BZ2Compressor(9)
    zeros = bytes(1 << 24)
    blob = b"".join([compressor.compress(zeros) for _ in range(64)] + [compressor.flush()])  # 1 GiB of zeros
    (folder / "meta.pickle.pbz2").write_bytes(blob)
    assert len(blob) < 100_000
    monkeypatch.setattr(nsas.nasbench, "MAX_DECOMPRESSED", 16 << 20, raising=False)  # the test's cap: 16 MiB
    tracemalloc.start()
    try:
        code = main(["truth", "import", str(folder), "--out", str(tmp_path / "t.csv")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line(capsys, code, "meta.pickle.pbz2", "more than 16,777,216 bytes")
    assert peak < 24 << 20  # the cap and a piece, not the 1 GiB the file expands to


def test_truth_import_refuses_a_zip_member_that_would_expand_a_thousandfold(capsys, tmp_path):
    import tracemalloc
    import zipfile

    source = tmp_path / "bomb.pth"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as f:
            for _ in range(16):
                f.write(bytes(1 << 24))  # 256 MiB of zeros in about 256 KB
    assert source.stat().st_size < 1 << 20
    import nsas.nasbench  # noqa: F401  (imported before measuring)

    tracemalloc.start()
    try:
        code = main(["truth", "import", str(source), "--out", str(tmp_path / "t.csv")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line(capsys, code, str(source), "would expand")
    assert peak < 64 << 20
