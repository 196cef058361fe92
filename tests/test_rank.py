"""`nsas rank` on a tiny search run: coverage, CSV, sampling, exactness, BN modes, errors."""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil

import pytest
import torch
from tiny import fake_dataset, tiny_batch, tiny_run, tiny_search_config, tiny_supernet

import nsas
import nsas.data
from nsas.cli import main
from nsas.data import load_dataset
from nsas.errors import NsasError
from nsas.evaluate import evaluate_path
from nsas.rank import (
    best_first,
    default_batch_size,
    preload,
    sample_archs,
    score_archs,
    split_batches,
    write_scores,
)
from nsas.search import SearchConfig, build_search_data, fixed_batches, load_search_run, search
from nsas.spaces import get_space
from nsas.spaces.base import SearchSpace
from nsas.spaces.nb201 import NB201Space

SPACE = get_space("nb201")
A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"
C = "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished search run of a tiny nb201 supernet (4 channels, 1 cell per stage)."""
    return tiny_run(tmp_path_factory.mktemp("search"))


def rank(capsys, run_dir, *argv: str) -> tuple[int, str, str]:
    code = main(["rank", str(run_dir), "--quiet", "--device", "cpu", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_scores(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("nsas: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# ---- which architectures ----------------------------------------------------
def test_archs_file_scores_each_architecture_once_in_file_order(capsys, run_dir, tmp_path):
    """Comments and blank lines are skipped; a repeat in another spelling is dropped, not scored twice."""
    archs = tmp_path / "archs.txt"
    archs.write_text(f"# candidates\n{B}\n\n{A}   # the best cell\n  {B}  \n{C}\n")
    out_csv = tmp_path / "scores.csv"
    code, out, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(out_csv))
    assert code == 0
    assert "3 nb201 architectures" in out and "1 repeated entries dropped" in out
    header, rows = read_scores(out_csv)
    assert header == ["arch", "acc", "loss"]
    assert [r["arch"] for r in rows] == [B, A, C]
    for row in rows:
        assert 0.0 <= float(row["acc"]) <= 100.0
        assert math.isfinite(float(row["loss"])) and float(row["loss"]) > 0
        assert str(SPACE.parse(row["arch"])) == row["arch"]


def test_archs_table_reads_the_arch_column_and_canonicalises(capsys, run_dir, tmp_path):
    """A CSV table (e.g. an earlier scores file): other columns ignored, two spellings of one arch kept once."""
    table = tmp_path / "truth.csv"
    table.write_text(f"arch,acc\n{C},90.5\n\" {C} \",1.0\n{A},93.7\n")
    code, _, _ = rank(capsys, run_dir, "--archs", str(table), "--out", str(tmp_path / "s.csv"))
    assert code == 0
    assert [r["arch"] for r in read_scores(tmp_path / "s.csv")[1]] == [C, A]
    listing = tmp_path / "archs"  # no suffix: recognised as JSON by its first character
    listing.write_text(json.dumps([{"arch": B, "note": "x"}, {"arch": A}]))
    code, _, _ = rank(capsys, run_dir, "--archs", str(listing), "--out", str(tmp_path / "j.csv"))
    assert code == 0
    assert [r["arch"] for r in read_scores(tmp_path / "j.csv")[1]] == [B, A]


def test_sample_is_seeded_distinct_and_of_the_requested_size(capsys, run_dir, tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _, _ = rank(capsys, run_dir, "--sample", "12", "--seed", str(seed), "--out", str(tmp_path / f"{name}.csv"))
        assert code == 0
        runs[name] = read_scores(tmp_path / f"{name}.csv")[1]
    assert runs["a"] == runs["b"]  # same architectures, same scores
    assert len({r["arch"] for r in runs["a"]}) == 12
    assert {r["arch"] for r in runs["a"]} != {r["arch"] for r in runs["c"]}
    # repeated draws are redrawn, so a large sample still has the size asked for
    assert len(set(sample_archs(SPACE, 2000, seed=0))) == 2000
    code, _, err = rank(capsys, run_dir, "--sample", str(SPACE.size() + 1))
    assert_one_line_error(code, err, "has only 15,625 architectures")


def test_all_scores_every_enumerated_architecture_once(capsys, run_dir, tmp_path, monkeypatch):
    """`--all` end to end on the first 40 architectures of the enumeration.

    Scoring all 15,625 takes minutes on 2 cores even for this supernet, so the
    space's enumerate is cut to a slice here; that enumerate itself yields
    15,625 distinct architectures is checked directly.
    """
    full = list(NB201Space.enumerate(SPACE))
    assert len(full) == len(set(full)) == 15_625
    monkeypatch.setattr(NB201Space, "enumerate", lambda self: itertools.islice(full, 40))
    code, out, _ = rank(capsys, run_dir, "--all", "--batches", "1", "--batch-size", "8",
                        "--out", str(tmp_path / "all.csv"))
    assert code == 0
    assert "functions/s" in out and "top 5 by accuracy" in out
    assert [r["arch"] for r in read_scores(tmp_path / "all.csv")[1]] == [str(a) for a in full[:40]]


def test_all_on_a_space_too_large_to_enumerate_is_one_line(capsys, run_dir, monkeypatch):
    monkeypatch.setattr(NB201Space, "enumerate", SearchSpace.enumerate)
    code, _, err = rank(capsys, run_dir, "--all")
    assert_one_line_error(code, err, "too many to enumerate")


# ---- what the scores are -----------------------------------------------------
def test_scores_are_evaluate_path_on_the_first_k_batches_of_the_split(capsys, run_dir, tmp_path):
    archs = tmp_path / "one.txt"
    archs.write_text(A + "\n")
    code, _, _ = rank(capsys, run_dir, "--archs", str(archs), "--batches", "3", "--out", str(tmp_path / "s.csv"))
    assert code == 0
    (row,) = read_scores(tmp_path / "s.csv")[1]
    _, supernet, data, _ = load_search_run(run_dir, "cpu")
    first = fixed_batches(data.val, 3)  # the run's validation half at its own batch size
    loaded = preload(first, "cpu")
    assert all(torch.equal(x, lx) and torch.equal(y, ly) for (x, y), (lx, ly) in zip(first, loaded))
    expected = evaluate_path(supernet, SPACE.parse(A), loaded)
    assert float(row["acc"]) == expected["acc"]
    assert float(row["loss"]) == expected["loss"]
    # the default is the run's eval_batches (1): a different score set
    code, _, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(tmp_path / "d.csv"))
    assert read_scores(tmp_path / "d.csv")[1][0]["loss"] != row["loss"]


def test_test_split_uses_the_data_sets_test_images(capsys, run_dir, tmp_path):
    cfg, _, data, _ = load_search_run(run_dir, "cpu")
    batches = split_batches(cfg, data, "test", batch_size=32, device="cpu")
    test_x = load_dataset(cfg.dataset).test_x
    assert torch.equal(batches.x, test_x) and not batches.augment
    code, out, _ = rank(capsys, run_dir, "--sample", "3", "--split", "test", "--batches", "2",
                        "--batch-size", "32", "--out", str(tmp_path / "t.csv"))
    assert code == 0 and "test split, 2 batches (64 images)" in out
    assert len(read_scores(tmp_path / "t.csv")[1]) == 3


def test_recalibrated_bn_changes_scores_and_leaves_the_supernet_as_it_was(run_dir):
    _, supernet, data, _ = load_search_run(run_dir, "cpu")
    archs = [SPACE.parse(A), SPACE.parse(B)]
    eval_set, train_set = fixed_batches(data.val, 2), fixed_batches(data.train, 2)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    plain = score_archs(supernet, archs, eval_set)
    recal = score_archs(supernet, archs, eval_set, recalibrate=train_set)
    assert all(p["loss"] != r["loss"] for p, r in zip(plain, recal))
    # each architecture's recalibration is its own: scoring B alone gives B's numbers
    assert score_archs(supernet, archs[1:], eval_set, recalibrate=train_set) == recal[1:]
    after = supernet.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    bns = [m for m in supernet.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not bn.track_running_stats and bn.running_mean is None for bn in bns)
    assert supernet.training  # the mode it was loaded in
    assert score_archs(supernet, archs, eval_set) == plain


def test_bn_recalibrate_from_the_command_line(capsys, run_dir, tmp_path):
    archs = tmp_path / "two.txt"
    archs.write_text(f"{A}\n{C}\n")
    for bn in ("batch", "recalibrate"):
        extra = ["--recalibrate-batches", "2"] if bn == "recalibrate" else []
        code, out, _ = rank(capsys, run_dir, "--archs", str(archs), "--bn", bn, *extra, "--out", str(tmp_path / f"{bn}.csv"))
        assert code == 0
    assert "recalibrated on 2 training batches" in out
    batch, recal = read_scores(tmp_path / "batch.csv")[1], read_scores(tmp_path / "recalibrate.csv")[1]
    assert [r["arch"] for r in batch] == [r["arch"] for r in recal] == [A, C]
    assert [r["loss"] for r in batch] != [r["loss"] for r in recal]


def test_a_run_that_searched_with_recalibration_is_ranked_with_it_by_default(capsys, run_dir, tmp_path):
    """`nsas rank RUN` at its defaults scores as the run's search did (bn, recalibrate_batches of config.yaml)."""
    import yaml
    recal_run = tmp_path / "recal-run"
    shutil.copytree(run_dir, recal_run)
    config = yaml.safe_load((recal_run / "config.yaml").read_text())
    assert config["bn"] == "batch"  # the tiny run's default
    (recal_run / "config.yaml").write_text(yaml.safe_dump({**config, "bn": "recalibrate", "recalibrate_batches": 2}))
    archs = tmp_path / "two.txt"
    archs.write_text(f"{A}\n{C}\n")
    scores = {}
    for name, extra in {"default": [], "explicit": ["--bn", "recalibrate", "--recalibrate-batches", "2"],
                        "batch": ["--bn", "batch"]}.items():
        code, out, err = rank(capsys, recal_run, "--archs", str(archs), *extra, "--out", str(tmp_path / f"{name}.csv"))
        assert code == 0, err
        assert ("recalibrated on 2 training batches" in out) == (name != "batch")
        scores[name] = read_scores(tmp_path / f"{name}.csv")[1]
    assert scores["default"] == scores["explicit"]
    assert [r["loss"] for r in scores["default"]] != [r["loss"] for r in scores["batch"]]
    code, _, err = rank(capsys, recal_run, "--archs", str(archs), "--bn", "batch", "--recalibrate-batches", "3")
    assert_one_line_error(code, err, "--bn recalibrate")
    # and a batch-statistics run stays batch-statistics: the original run at its defaults
    code, out, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(tmp_path / "plain.csv"))
    assert code == 0 and "BatchNorm: batch statistics" in out


def test_text_space_scores_and_ppl_column(tmp_path):
    """The RNN path: per-token accuracy, a ppl column equal to exp(loss), ranked by loss."""
    space = get_space("darts-rnn")
    model = tiny_supernet("darts-rnn")
    archs = sample_archs(space, 3, seed=0)
    rows = score_archs(model, archs, [tiny_batch("darts-rnn", 0), tiny_batch("darts-rnn", 1)])
    for arch, row in zip(archs, rows):
        direct = evaluate_path(model, arch, [tiny_batch("darts-rnn", 0), tiny_batch("darts-rnn", 1)])
        assert row["acc"] == pytest.approx(direct["acc"]) and row["loss"] == pytest.approx(direct["loss"])
    write_scores(tmp_path / "rnn.csv", rows, kind="text")
    header, written = read_scores(tmp_path / "rnn.csv")
    assert header == ["arch", "acc", "loss", "ppl"]
    for row in written:
        assert float(row["ppl"]) == pytest.approx(math.exp(float(row["loss"])))
        assert space.parse(row["arch"]) in archs
    assert [r["loss"] for r in best_first(rows, "text")] == sorted(r["loss"] for r in rows)


# ---- errors --------------------------------------------------------------------
def test_missing_run_directory_or_checkpoint_is_one_line(capsys, run_dir, tmp_path):
    code, _, err = rank(capsys, tmp_path / "nowhere", "--sample", "2")
    assert_one_line_error(code, err, "nowhere", "not a search run directory")
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(run_dir / "config.yaml", half / "config.yaml")
    code, _, err = rank(capsys, half, "--sample", "2")
    assert_one_line_error(code, err, "checkpoint.pt", "does not exist")


def test_malformed_architecture_line_names_file_and_line(capsys, run_dir, tmp_path):
    archs = tmp_path / "bad.txt"
    archs.write_text(f"{A}\n# fine so far\n{A.replace('skip_connect', 'conv_5x5')}\n")
    code, _, err = rank(capsys, run_dir, "--archs", str(archs), "--out", str(tmp_path / "never.csv"))
    assert_one_line_error(code, err, f"{archs} line 3", "conv_5x5")
    assert not (tmp_path / "never.csv").exists()


def test_other_user_errors_are_one_line(capsys, run_dir, tmp_path):
    code, _, err = rank(capsys, run_dir, "--sample", "2", "--batches", "999")
    assert_one_line_error(code, err, "--batches 999", "only")
    code, _, err = rank(capsys, run_dir, "--sample", "2", "--out", str(tmp_path / "no" / "s.csv"))
    assert_one_line_error(code, err, "does not exist")
    code, _, err = rank(capsys, run_dir, "--archs", str(tmp_path / "missing.txt"))
    assert_one_line_error(code, err, "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    code, _, err = rank(capsys, run_dir, "--archs", str(tmp_path / "empty.txt"))
    assert_one_line_error(code, err, "no architectures")
    code, _, err = rank(capsys, run_dir, "--sample", "2", "--recalibrate-batches", "3")
    assert_one_line_error(code, err, "--bn recalibrate")


def test_workers_split_the_work_and_give_the_same_scores(capsys, run_dir, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert rank(capsys, run_dir, "--sample", "5", "--seed", "7", "--batches", "1", "--out", str(one))[0] == 0
    code, out, err = rank(capsys, run_dir, "--sample", "5", "--seed", "7", "--batches", "1", "--workers", "2",
                          "--out", str(two))
    assert code == 0, err
    assert read_scores(one) == read_scores(two)  # same rows, same order, same floats
    code, _, err = rank(capsys, run_dir, "--sample", "5", "--workers", "0")
    assert_one_line_error(code, err, "--workers")


def test_same_function_cells_are_scored_once_and_share_the_score(run_dir, monkeypatch):
    import nsas.evaluate

    _, supernet, data, _ = load_search_run(run_dir, "cpu")
    eval_set = fixed_batches(data.val, 1)
    dead = "|none~0|+|nor_conv_3x3~0|{x}~1|+|skip_connect~0|{y}~1|nor_conv_1x1~2|"  # node 1 is zero
    same = [SPACE.parse(dead.format(x=x, y=y)) for x, y in [("none", "none"), ("nor_conv_3x3", "avg_pool_3x3"),
                                                            ("skip_connect", "nor_conv_1x1")]]
    archs = [SPACE.parse(A), *same, SPACE.parse(B)]
    paths = []
    original = nsas.evaluate._path_sums
    monkeypatch.setattr(nsas.evaluate, "_path_sums", lambda m, p, b: paths.append(p) or original(m, p, b))
    rows = score_archs(supernet, archs, eval_set)
    assert len(paths) == 3  # A, the one function of `same`, B
    assert [r["arch"] for r in rows] == [str(a) for a in archs]
    assert rows[1]["acc"] == rows[2]["acc"] == rows[3]["acc"] and rows[1]["loss"] == rows[3]["loss"]
    alone = evaluate_path(supernet, same[2], preload(eval_set, "cpu"))
    assert rows[3]["acc"] == pytest.approx(alone["acc"]) and rows[3]["loss"] == pytest.approx(alone["loss"], rel=1e-5)
def test_text_defaults_to_the_runs_eval_batch_size_and_refuses_one_column(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    cfg = tiny_search_config("darts-rnn", eval_batch_size=5)
    data = build_search_data(cfg, torch.device("cpu"))
    assert default_batch_size(cfg) == 5
    assert split_batches(cfg, data, "val", batch_size=5, device="cpu") is data.score
    other = split_batches(cfg, data, "val", batch_size=2, device="cpu")
    assert other.data.size(1) == 2
    assert split_batches(cfg, data, "test", batch_size=3, device="cpu").data.size(1) == 3
    with pytest.raises(NsasError, match="at least 2 columns"):
        split_batches(cfg, data, "test", batch_size=1, device="cpu")


def test_score_batch_size_scores_the_same_images_in_larger_batches(capsys, tmp_path):
    """score_batch_size (the nb201-cpu preset: 256) re-batches the validation half for every score."""
    cfg = SearchConfig(space="nb201", dataset="cifar10-mini", epochs=1, steps_per_epoch=2, batch_size=16,
                       score_batch_size=32, channels=4, cells=1, eval_batches=1, select_rounds=1, select_samples=2,
                       checkpoint_every=0, device="cpu")
    data = build_search_data(cfg, torch.device("cpu"))
    (sx, sy), = fixed_batches(data.score, 1)
    (vx1, vy1), (vx2, vy2) = fixed_batches(data.val, 2)
    assert sx.shape[0] == 32 and vx1.shape[0] == 16
    assert torch.equal(sx, torch.cat([vx1, vx2])) and torch.equal(sy, torch.cat([vy1, vy2]))  # same images
    run = tmp_path / "run"
    search(cfg, run, progress=False)
    assert default_batch_size(load_search_run(run, "cpu")[0]) == 32
    archs = tmp_path / "a.txt"
    archs.write_text(f"{A}\n{B}\n")
    assert rank(capsys, run, "--archs", str(archs), "--out", str(tmp_path / "d.csv"))[0] == 0
    assert rank(capsys, run, "--archs", str(archs), "--batch-size", "32", "--out", str(tmp_path / "b32.csv"))[0] == 0
    assert rank(capsys, run, "--archs", str(archs), "--batch-size", "16", "--batches", "2",
                "--out", str(tmp_path / "b16.csv"))[0] == 0
    default, b32, b16 = (read_scores(tmp_path / f"{n}.csv")[1] for n in ("d", "b32", "b16"))
    assert default == b32  # the run's own score batches by default
    assert [r["loss"] for r in default] != [r["loss"] for r in b16]  # batch statistics differ at batch 16


# ---- seed ensembles ------------------------------------------------------------
@pytest.fixture(scope="module")
def second_run(tmp_path_factory, run_dir):
    """The same tiny search as ``run_dir`` with another seed."""
    path = tmp_path_factory.mktemp("search-seed1")
    cfg = SearchConfig(space="nb201", dataset="cifar10-mini", epochs=1, steps_per_epoch=2, batch_size=16,
                       channels=4, cells=1, eval_batches=1, select_rounds=1, select_samples=2,
                       checkpoint_every=0, device="cpu", seed=1)
    search(cfg, path, progress=False)
    return path


def test_several_runs_write_the_mean_of_their_scores(capsys, run_dir, second_run, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{A}\n{B}\n{C}\n")
    singles = []
    for i, run in enumerate((run_dir, second_run)):
        assert rank(capsys, run, "--archs", str(archs), "--out", str(tmp_path / f"{i}.csv"))[0] == 0
        singles.append(read_scores(tmp_path / f"{i}.csv")[1])
    assert singles[0] != singles[1]  # two supernets, two scores
    code = main(["rank", str(run_dir), str(second_run), "--archs", str(archs), "--out", str(tmp_path / "e.csv"),
                 "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "run 2 of 2" in out and "with 2 supernets" in out
    header, rows = read_scores(tmp_path / "e.csv")
    assert header == ["arch", "acc", "loss"] and [r["arch"] for r in rows] == [A, B, C]
    for row, one, two in zip(rows, *singles, strict=True):
        for key in ("acc", "loss"):
            assert float(row[key]) == pytest.approx((float(one[key]) + float(two[key])) / 2, rel=1e-9)
    # the Python API takes a list of runs
    result = nsas.rank([run_dir, second_run], [A, B, C], out=tmp_path / "api.csv", device="cpu")
    assert [r["acc"] for r in result.rows] == pytest.approx([float(r["acc"]) for r in rows])


def test_ensemble_errors_are_one_line(capsys, run_dir, second_run, tmp_path, monkeypatch):
    code = main(["rank", str(run_dir), str(second_run), "--sample", "2", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "2 runs", "--out")
    code = main(["rank", str(run_dir), str(run_dir), "--sample", "2", "--out", str(tmp_path / "x.csv")])
    assert_one_line_error(code, capsys.readouterr().err, "named twice")
    text = tmp_path / "text-run"
    real = nsas.data.load_dataset
    monkeypatch.setattr(nsas.data, "load_dataset",
                        lambda name, *a, **k: (fake_dataset if name.startswith("fake-") else real)(name, *a, **k))
    search(tiny_search_config("darts-rnn", epochs=1, steps_per_epoch=1, select_rounds=1, select_samples=1), text,
           progress=False)
    code = main(["rank", str(run_dir), str(text), "--sample", "2", "--out", str(tmp_path / "y.csv"), "--quiet",
                 "--device", "cpu"])
    assert_one_line_error(code, capsys.readouterr().err, "darts-rnn", "one space")
    assert not (tmp_path / "y.csv").exists()


def test_scoring_on_few_images_warns_with_the_noise_and_the_remedy(capsys, run_dir, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{A}\n{B}\n")
    code, out, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(tmp_path / "few.csv"))
    assert code == 0 and "1 batches (16 images)" in out
    assert "warning: an accuracy on 16 images carries about 12.5 points of sampling noise" in out
    code, out, _ = rank(capsys, run_dir, "--archs", str(archs), "--batches", "all", "--batch-size", "250",
                        "--out", str(tmp_path / "many.csv"))
    examples = int(out.split(" batches (")[1].split(" images")[0].replace(",", ""))
    assert code == 0 and examples >= 1000, out
    assert "warning" not in out


# ---- zero-cost proxies and fusion (issue 20) --------------------------------
PROXY_FLAGS = ("--proxy-channels", "4", "--proxy-cells", "1", "--proxy-batch-size", "8")


def test_proxy_columns_beside_acc_and_loss_and_a_fitted_fused_score(capsys, run_dir, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{A}\n{B}\n{C}\n")
    truth = tmp_path / "truth.csv"  # the truth orders by live size: the count alone reaches tau 1
    truth.write_text(f"arch,acc\n{A},93.0\n{B},90.0\n{C},80.0\n")
    out = tmp_path / "s.csv"
    code, log, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(out), "--proxies", "count,naswot",
                        *PROXY_FLAGS, "--fuse", "--fit-on", str(truth))
    assert code == 0, log
    header, rows = read_scores(out)
    assert header == ["arch", "acc", "loss", "params", "naswot", "score"]
    assert [r["arch"] for r in rows] == [A, B, C]
    from nsas.proxies import proxy_batch, score_proxies

    expected = score_proxies(SPACE, [A, B, C], ["params", "naswot"], proxy_batch("cifar10-mini", 8),
                             options={"channels": 4, "cells": 1})
    assert [float(r["naswot"]) for r in rows] == pytest.approx([e["naswot"] for e in expected])
    saved = json.loads((tmp_path / "s.fusion.json").read_text())
    assert saved["fitted_on"]["truth"] == "truth.csv" and saved["fitted_on"]["cells"] == 3
    assert saved["fitted_on"]["tau"] == pytest.approx(1.0) and saved["fitted_on"]["columns"] == [
        "params", "naswot", "acc", "loss"]
    scores = [float(r["score"]) for r in rows]
    assert scores[0] > scores[1] > scores[2]  # higher is better
    # the saved weights reload and give the same column
    again = tmp_path / "again.csv"
    code, log, _ = rank(capsys, run_dir, "--archs", str(archs), "--out", str(again), "--proxies", "count,naswot",
                        *PROXY_FLAGS, "--fuse", "--weights-from", str(tmp_path / "s.fusion.json"))
    assert code == 0 and [float(r["score"]) for r in read_scores(again)[1]] == pytest.approx(scores)


def test_proxies_without_a_run_directory(capsys, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{A}\n{B}\n{C}\n{A}\n")
    out = tmp_path / "p.csv"
    code = main(["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "all", "--out", str(out),
                 "--quiet", "--device", "cpu", *PROXY_FLAGS, "--fuse", "--weights", "count=0.5,jacov=0.5"])
    log = capsys.readouterr().out
    assert code == 0, log
    header, rows = read_scores(out)
    from nsas.proxies import proxy_names

    assert header == ["arch", *proxy_names(), "score"] and len(rows) == 3
    assert (tmp_path / "p.fusion.json").exists() and "s per function" in log
    result = nsas.rank(space="nb201", archs=[A, B], proxies=["params"], out=tmp_path / "api.csv")
    assert [r["arch"] for r in result.best] == [A, B] and result.order_by == "params"


def test_proxy_and_fusion_errors_are_one_line(capsys, run_dir, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{A}\n{B}\n")
    cases = [
        (["rank", "--archs", str(archs)], "RUN_DIR"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "jacov"], "--out"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "nope", "--out", str(tmp_path / "x.csv")],
         "unknown proxy 'nope'"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "jacov", "--out", str(tmp_path / "x.csv"),
          "--fuse"], "--fuse needs exactly one"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "jacov", "--out", str(tmp_path / "x.csv"),
          "--weights", "jacov=1"], "applies only with --fuse"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "jacov", "--out", str(tmp_path / "x.csv"),
          "--fuse", "--weights", "jacov"], "COLUMN=NUMBER"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "params", "--out", str(tmp_path / "x.csv"),
          "--fuse", "--weights", "loss=1"], "no column 'loss'"),
        (["rank", "--space", "nb201", "--archs", str(archs), "--proxies", "params", "--out", str(tmp_path / "x.csv"),
          "--workers", "2"], "needs a RUN_DIR"),
        (["rank", str(run_dir), "--archs", str(archs), "--proxies", "params", "--cost"], "share a name"),
    ]
    for argv, needle in cases:
        code = main([*argv, "--quiet", "--device", "cpu"])
        assert_one_line_error(code, capsys.readouterr().err, needle)
