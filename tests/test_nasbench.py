"""`nsas truth import`: benchmark files of NAS-Bench-201's structure become truth CSVs; code in them never runs."""

from __future__ import annotations

import bz2
import collections
import os
import pickle
import random

import numpy as np
import pytest
import torch

from nsas.cli import main
from nsas.correlate import read_table
from nsas.errors import NsasError
from nsas.spaces import get_space
from nsas.nasbench import RestrictedUnpickler, import_truth, load_torch_file

SPACE = get_space("nb201")
ARCHS = [str(SPACE.sample(random.Random(i))) for i in range(4)]


def _run(epochs: int, accs: dict[str, float], *, numpy_numbers: bool = False) -> dict:
    """One training result of one seed, shaped like the benchmark's (eval_acc1es keyed '<split>@<epoch>')."""
    num = np.float64 if numpy_numbers else float
    evals = {}
    for split, acc in accs.items():
        for epoch in range(epochs):
            evals[f"{split}@{epoch}"] = num(acc if epoch == epochs - 1 else acc / 2)
    return {"name": "x", "epochs": epochs, "eval_names": list(accs), "eval_acc1es": evals,
            "train_acc1es": {e: num(50.0) for e in range(epochs)}, "params": num(0.5), "flop": 10.0,
            "latency": [num(0.01)], "net_state_dict": None}


def _arch_results(index: int, epochs: int, *, numpy_numbers: bool = False) -> dict:
    """ArchResults-like state: all_results keyed by (dataset, seed), two seeds of cifar10 and cifar100."""
    results = {}
    for seed, shift in ((777, 0.0), (888, 2.0)):
        results[("cifar10", seed)] = _run(epochs, {"ori-test": 80.0 + index + shift}, numpy_numbers=numpy_numbers)
        results[("cifar100", seed)] = _run(epochs, {"ori-test": 1.0, "x-valid": 50.0 + index,
                                                     "x-test": 60.0 + index + shift}, numpy_numbers=numpy_numbers)
    return {"arch_index": index, "arch_str": ARCHS[index], "all_results": results,
            "dataset_seed": {"cifar10": [777, 888], "cifar100": [777, 888]}, "clear_net_done": True}


def _nb201_dict() -> dict:
    arch2infos = collections.OrderedDict(
        (i, {"less": _arch_results(i, 12), "full": _arch_results(i, 200)}) for i in range(len(ARCHS)))
    return {"meta_archs": ARCHS, "arch2infos": arch2infos, "evaluated_indexes": set(range(len(ARCHS))),
            "total_archs": len(ARCHS)}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_nb201_torch_file_becomes_a_truth_csv(tmp_path, zip_format, capsys):
    data = _nb201_dict()
    data["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]["net_state_dict"] = {"w": torch.ones(3)}
    path = tmp_path / "NAS-Bench-201-v1_1-test.pth"
    torch.save(data, path, _use_new_zipfile_serialization=zip_format)
    assert main(["truth", "import", str(path), "--out", str(tmp_path / "truth.csv")]) == 0
    table = read_table(tmp_path / "truth.csv")
    # the mean of the two seeds' last-epoch test accuracy
    assert {a: row["test_acc"] for a, row in table.items()} == pytest.approx({a: 81.0 + i for i, a in enumerate(ARCHS)})
    assert "4 architectures" in capsys.readouterr().out
    loaded = load_torch_file(path)
    assert loaded["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]["net_state_dict"] == {"w": None}


def test_budget_data_set_and_split_choose_the_numbers(tmp_path):
    path = tmp_path / "nb201.pth"
    torch.save(_nb201_dict(), path)
    assert dict(import_truth(path, dataset="cifar100")) == pytest.approx({a: 61.0 + i for i, a in enumerate(ARCHS)})
    assert dict(import_truth(path, dataset="cifar100", split="x-valid", epochs="12")) == pytest.approx(
        {a: 50.0 + i for i, a in enumerate(ARCHS)})
    with pytest.raises(NsasError, match="no 200-epoch results on ImageNet16-120"):
        import_truth(path, dataset="ImageNet16-120")


def test_nats_bench_simple_folder_with_numpy_numbers(tmp_path):
    folder = tmp_path / "NATS-tss-v1_0-test-simple"
    folder.mkdir()
    (folder / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps(
        {"meta_archs": ARCHS, "total_archs": len(ARCHS), "arch2infos": {}, "evaluated_indexes": set()})))
    for i in range(len(ARCHS)):
        infos = collections.OrderedDict([("12", _arch_results(i, 12, numpy_numbers=True)),
                                         ("200", _arch_results(i, 200, numpy_numbers=True))])
        (folder / f"{i:06d}.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps(infos, protocol=4)))
    rows = import_truth(folder)
    assert dict(rows) == pytest.approx({a: 81.0 + i for i, a in enumerate(ARCHS)})
    assert all(type(acc) is float for _, acc in rows)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("kind", ["pickle", "torch-zip", "nats"])
def test_a_file_naming_os_system_is_refused_and_nothing_runs(tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    payload = {"meta_archs": ARCHS, "arch2infos": {0: {"full": _Exploit(marker)}}}
    if kind == "nats":
        source = tmp_path / "simple"
        source.mkdir()
        (source / "meta.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps(payload)))
    else:
        source = tmp_path / "bench.pth"
        if kind == "torch-zip":
            torch.save(payload, source)
        else:
            source.write_bytes(pickle.dumps(payload))
    assert main(["truth", "import", str(source), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and ("posix.system" in err or "os.system" in err or "nt.system" in err)
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "t.csv").exists()


def test_unpickler_allows_only_listed_globals():
    import io

    for module, name in [("builtins", "eval"), ("nsas.nasbench", "import_truth"), ("numpy", "load"),
                         ("torch", "load"), ("collections", "defaultdict")]:
        with pytest.raises(NsasError, match=f"refusing to load {module}.{name}"):
            RestrictedUnpickler(io.BytesIO(b"")).find_class(module, name)
    assert RestrictedUnpickler(io.BytesIO(b"")).find_class("collections", "OrderedDict") is collections.OrderedDict


def test_malformed_sources_fail_in_one_line(tmp_path, capsys):
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04not a pickle")
    (tmp_path / "empty").mkdir()
    for source in ("junk.pth", "empty", "missing.pth"):
        assert main(["truth", "import", str(tmp_path / source), "--out", str(tmp_path / "t.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nsas: error:") and len(err.strip().splitlines()) == 1
