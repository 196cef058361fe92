"""Ranking metrics, table reading, joining and `nsas correlate` end to end."""

from __future__ import annotations

import csv
import itertools
import json
import math
import random

import numpy as np
import pytest
import torch

from nsas.cli import main
from nsas.correlate import (
    bootstrap_ci,
    correlate,
    correlate_columns,
    format_report,
    join,
    kendall_tau,
    live_parameters,
    name_direction,
    precision_at_k,
    read_table,
    spearman_rho,
    top_truth_rank,
    within_groups_tau,
)
from nsas.errors import NsasError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CANONICAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def nb201(i: int) -> str:
    """The i-th NAS-Bench-201 string (edge ops are the base-5 digits of i)."""
    ops = [OPS[(i // 5**e) % 5] for e in range(6)]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def tau_b_by_pairs(x, y):
    """Kendall tau-b straight from its definition (O(n^2))."""
    conc = disc = tie_x = tie_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tie_x += dx == 0
        tie_y += dy == 0
        conc += dx * dy > 0
        disc += dx * dy < 0
    pairs = len(x) * (len(x) - 1) // 2
    return (conc - disc) / math.sqrt((pairs - tie_x) * (pairs - tie_y))


# ---------------------------------------------------------------- metrics
def test_kendall_tau_by_hand():
    # One discordant pair (2,3) of 6: (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    # Ties: C=4, D=0, one pair tied in x, one in y: 4 / sqrt(5 * 5).
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_by_hand_with_ties():
    # x ranks (1, 2.5, 2.5, 4), y ranks (1, 3, 2, 4); centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # rho = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman_rho([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))
    assert spearman_rho([10, 20, 30], [3, 1, 2]) == pytest.approx(-0.5)  # ranks (1,2,3) vs (3,1,2): 1 - 6*6/24


def test_kendall_tau_matches_its_definition_with_many_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 40).astype(float)  # many ties
    y = x + rng.integers(-2, 3, 40)
    assert kendall_tau(x, y) == pytest.approx(tau_b_by_pairs(x, y))


def test_correlation_of_constant_input_is_nan():
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))


def test_precision_at_k_by_hand():
    score = [0.9, 0.8, 0.7, 0.6, 0.5]
    truth = [0.5, 0.9, 0.8, 0.1, 0.2]
    assert precision_at_k(score, truth, 1) == 0.0  # best score 0, best truth 1
    assert precision_at_k(score, truth, 2) == 0.5  # {0,1} vs {1,2}
    assert precision_at_k(score, truth, 3) == 1.0  # {0,1,2} vs {1,2,0}
    assert precision_at_k(score, truth, 4) == 0.75  # {0,1,2,3} vs {1,2,0,4}
    assert precision_at_k(score, truth, 5) == 1.0
    with pytest.raises(ValueError):
        precision_at_k(score, truth, 6)
    with pytest.raises(ValueError):
        precision_at_k(score, truth, 0)


def test_precision_ties_break_by_position_alike():
    # Entries 1 and 2 are equal in both rankings: top-2 is {0, 1} in both.
    assert precision_at_k([3, 2, 2, 1], [9, 5, 5, 0], 2) == 1.0


def test_top_truth_rank():
    assert top_truth_rank([0.1, 0.9, 0.5], [3, 1, 2]) == 3
    assert top_truth_rank([0.9, 0.1, 0.5], [3, 1, 2]) == 1
    assert top_truth_rank([0.1, 0.9, 0.5], [3, 2, 3]) == 3  # two strictly better
    assert top_truth_rank([0.1, 0.9, 0.5], [2, 2, 3]) == 2  # a tie in truth shares the better rank


# ---------------------------------------------------------------- bootstrap
def _noisy(n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + rng.normal(size=n)


def test_bootstrap_ci_contains_point_and_is_seeded():
    x, y = _noisy()
    for metric in (kendall_tau, spearman_rho, lambda a, b: precision_at_k(a, b, 10)):
        ci = bootstrap_ci(metric, x, y, resamples=200, seed=1)
        assert ci.low <= metric(x, y) <= ci.high
        assert ci.low < ci.high
        assert ci == bootstrap_ci(metric, x, y, resamples=200, seed=1)
    assert bootstrap_ci(kendall_tau, x, y, resamples=200, seed=2) != bootstrap_ci(kendall_tau, x, y, resamples=200, seed=1)
    wide = bootstrap_ci(kendall_tau, x, y, resamples=200, seed=1, confidence=0.99)
    narrow = bootstrap_ci(kendall_tau, x, y, resamples=200, seed=1, confidence=0.5)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_bootstrap_counts_degenerate_resamples():
    # With 3 items, a resample of one item thrice has constant scores: tau undefined.
    drawn: list[np.ndarray] = []  # the resamples seed 0 draws (the same for every metric)
    bootstrap_ci(lambda a, b: drawn.append(a.copy()) or 0.0, [1, 2, 3], [1, 3, 2], resamples=400, seed=0)
    constant = sum(len(set(a.tolist())) == 1 for a in drawn)  # about 400 / 9
    assert len(drawn) == 400 and constant > 0
    ci = bootstrap_ci(kendall_tau, [1, 2, 3], [1, 3, 2], resamples=400, seed=0)
    assert ci.skipped == constant
    assert -1 <= ci.low <= ci.high <= 1
    never = bootstrap_ci(lambda a, b: math.nan, [1, 2, 3], [1, 2, 3], resamples=10)
    assert never.skipped == 10 and math.isnan(never.low)


# ---------------------------------------------------------------- reading
def test_read_csv_json_jsonl(tmp_path):
    (tmp_path / "a.csv").write_text(f"arch,acc,loss\n{nb201(1)},0.5,1.25\n\n{nb201(2)},0.75,2\n")
    table = read_table(tmp_path / "a.csv")
    assert table == {nb201(1): {"acc": 0.5, "loss": 1.25}, nb201(2): {"acc": 0.75, "loss": 2.0}}
    assert read_table(tmp_path / "a.csv", keys=["loss"]) == {nb201(1): {"loss": 1.25}, nb201(2): {"loss": 2.0}}
    rows = [{"arch": nb201(1), "acc": 0.5}, {"arch": nb201(2), "acc": 1}]
    (tmp_path / "b.json").write_text(json.dumps(rows, indent=2))
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    expected = {nb201(1): {"acc": 0.5}, nb201(2): {"acc": 1.0}}
    assert read_table(tmp_path / "b.json") == expected
    assert read_table(tmp_path / "c.jsonl") == expected


@pytest.mark.parametrize(
    "name, text, keys, pieces",
    [
        ("a.csv", "name,acc\nx,1\n", None, ["line 1", "'arch'", "name, acc"]),
        ("a.csv", f"arch,acc\n{nb201(1)},1\n{nb201(2)},oops\n", None, ["line 3", "'acc'", "'oops'"]),
        ("a.csv", f"arch,acc\n{nb201(1)},nan\n", None, ["line 2", "not a number"]),
        ("a.csv", f"arch,acc,loss\n{nb201(1)},1,2\n", ["top1"], ["no column 'top1'", "available: acc, loss"]),
        ("a.csv", f"arch,acc\n{nb201(1)},1,2\n", None, ["line 2", "3 fields"]),
        ("a.csv", f"arch,acc\n{nb201(1)},1\n{nb201(1)},2\n", None, ["line 3", "already appears on line 2"]),
        ("a.jsonl", f'{{"arch": "{nb201(1)}", "acc": 1}}\n{{"arch": "{nb201(2)}", "acc": "x"}}\n', None,
         ["line 2", "'acc'"]),
        ("a.jsonl", f'{{"arch": "{nb201(1)}", "acc": 1}}\n{{"arch": \n', None, ["line 2", "not valid JSON"]),
        ("a.json", f'[\n {{"arch": "{nb201(1)}", "acc": 1}},\n {{"arch": "{nb201(2)}", "loss": 1}}\n]', ["acc"],
         ["line 3", "no key 'acc'", "available: loss"]),
        ("a.json", '[\n {"acc": 1}\n]', None, ["line 2", "no 'arch'"]),
        ("a.json", '[\n {"arch": 3, "acc": 1}\n]', None, ["line 2", "architecture string"]),
    ],
)
def test_read_table_errors_name_file_and_line(tmp_path, name, text, keys, pieces):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(NsasError) as err:
        read_table(path, keys=keys)
    message = str(err.value)
    assert str(path) in message
    for piece in pieces:
        assert piece in message


def test_read_table_unreadable_file(tmp_path):
    with pytest.raises(NsasError, match="cannot read .*missing.csv"):
        read_table(tmp_path / "missing.csv")


# ---------------------------------------------------------------- joining
def test_join_matches_string_forms_and_reports_one_sided():
    scores = {f"  {CANONICAL}\t": {"acc": 1.0}, nb201(1): {"acc": 2.0}, nb201(2): {"acc": 3.0}}
    truth = {CANONICAL: {"acc": 10.0}, nb201(2): {"acc": 30.0}, nb201(3): {"acc": 40.0}}
    joined = join(scores, truth, space="nb201")
    assert joined.archs == [CANONICAL, nb201(2)]
    assert joined.scores == [{"acc": 1.0}, {"acc": 3.0}]
    assert joined.truth == [{"acc": 10.0}, {"acc": 30.0}]
    assert joined.only_scores == [nb201(1)]
    assert joined.only_truth == [nb201(3)]
    assert join(scores, truth).archs == joined.archs  # space detected


DARTS_SWAPPED = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=range(2, 6), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


def test_join_matches_darts_genotype_forms(tmp_path):
    from nsas.spaces import get_space

    space = get_space("darts")
    others = {str(space.sample(random.Random(seed))) for seed in range(3)}
    canonical = str(space.parse(DARTS_SWAPPED))
    assert canonical != DARTS_SWAPPED and canonical not in others
    with open(tmp_path / "s.csv", "w", newline="") as f:  # genotypes hold commas: quoted fields
        writer = csv.writer(f)
        writer.writerow(["arch", "acc"])
        writer.writerows([[DARTS_SWAPPED, 1], *([g, 2] for g in others)])
    (tmp_path / "t.json").write_text(json.dumps([{"arch": a, "acc": 3} for a in [canonical, *others]]))
    joined = join(read_table(tmp_path / "s.csv"), read_table(tmp_path / "t.json"), space="darts")
    assert joined.archs[0] == canonical and set(joined.archs) == {canonical, *others}
    assert joined.only_scores == joined.only_truth == []
    with pytest.raises(NsasError, match="appears twice"):
        join({DARTS_SWAPPED: {}, canonical: {}}, {})


def test_join_rejects_one_arch_written_twice(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(f'arch,acc\n"{CANONICAL}",1\n" {CANONICAL}",2\n')
    with pytest.raises(NsasError) as err:
        join(read_table(path), {CANONICAL: {"acc": 1.0}})
    assert CANONICAL in str(err.value) and str(path) in str(err.value) and "line 2" in str(err.value)


def test_join_names_file_and_line_of_a_bad_arch(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(f"arch,acc\n{nb201(1)},1\n|conv_9x9~0|+|x|,2\n")
    with pytest.raises(NsasError, match=r"s\.csv line 3: .*"):
        join(read_table(path), {})


# ---------------------------------------------------------------- correlate
def _tables(n=12, seed=0):
    x, y = _noisy(n, seed)
    return ({nb201(i): {"acc": float(x[i]), "loss": float(-x[i])} for i in range(n)},
            {nb201(i): {"acc": float(y[i]), "err": float(-y[i])} for i in range(n)})


def test_correlate_values_and_orientation():
    scores, truth = _tables()
    result = correlate(scores, truth, top_k=(3, 50), bootstrap=200, seed=0)
    x = [scores[a]["acc"] for a in scores]
    y = [truth[a]["acc"] for a in scores]
    assert result["n"] == 12
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(tau_b_by_pairs(x, y))
    rank_x, rank_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))  # no ties in normal draws
    assert result["metrics"]["spearman_rho"]["value"] == pytest.approx(np.corrcoef(rank_x, rank_y)[0, 1])
    assert result["metrics"]["precision@3"]["value"] == precision_at_k(x, y, 3)
    assert "precision@50" not in result["metrics"] and result["skipped_top_k"] == [50]
    assert result["top_arch"] == nb201(int(np.argmax(x)))
    low, high = result["metrics"]["kendall_tau"]["ci"]
    assert low <= result["metrics"]["kendall_tau"]["value"] <= high
    # loss and err are the negated keys: lower is better gives the same answers.
    flipped = correlate(scores, truth, key="loss", truth_key="err", lower_is_better=True, top_k=(3, 50),
                        bootstrap=200, seed=0)
    assert flipped["metrics"] == result["metrics"]
    assert flipped["top_truth_rank"] == result["top_truth_rank"]
    mixed = correlate(scores, truth, key="loss", truth_key="acc", lower_is_better=True,
                      truth_lower_is_better=False, top_k=(3,), bootstrap=0)
    assert mixed["metrics"]["kendall_tau"]["value"] == pytest.approx(result["metrics"]["kendall_tau"]["value"])
    assert mixed["metrics"]["kendall_tau"]["ci"] is None


def test_correlate_needs_three_joined_and_known_keys():
    scores, truth = _tables()
    with pytest.raises(NsasError, match="only 2 architecture"):
        correlate({a: scores[a] for a in list(scores)[:2]}, truth)
    with pytest.raises(NsasError, match="no key 'top1'; available: acc, err"):
        correlate(scores, truth, truth_key="top1")
    with pytest.raises(NsasError, match="unknown search space"):
        correlate(scores, truth, space="nb999")


def test_within_groups_tau_by_hand():
    # group 0: pairs (0,1) discordant, (0,2) and (1,2) concordant; group 1: (3,4) concordant -> (3 - 1) / 4
    assert within_groups_tau([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], [0, 0, 0, 1, 1]) == pytest.approx(0.5)
    # pairs across groups do not count: perfectly ordered groups, reversed between them
    assert within_groups_tau([1, 2, 3, 4], [3, 4, 1, 2], [0, 0, 1, 1]) == 1.0
    # a pair tied in score or truth is neither: only (0,2) in group 0 counts, discordant
    assert within_groups_tau([1, 1, 2], [2, 3, 1], [0, 0, 0]) == -1.0
    assert math.isnan(within_groups_tau([1, 2, 3], [1, 2, 3], [0, 1, 2]))  # no pair shares a group


def test_correlate_baseline_ranks_by_live_parameters_and_scores_within_equal_size():
    from nsas.spaces import get_space

    space, rng = get_space("nb201"), random.Random(1)
    archs = sorted({str(space.sample(rng)) for _ in range(40)})
    size = np.array([space.parameter_count(space.live_arch(a)) for a in archs], dtype=float)
    truth_values = size / 1e5 + np.array([rng.gauss(0, 1) for _ in archs])
    score_values = truth_values + np.array([rng.gauss(0, 1) for _ in archs])
    assert np.array_equal(live_parameters(archs), size)
    result = correlate({a: {"acc": v} for a, v in zip(archs, score_values)},
                       {a: {"acc": v} for a, v in zip(archs, truth_values)}, bootstrap=100, baseline=True)
    base = result["baseline"]
    assert base["metrics"]["kendall_tau"]["value"] == pytest.approx(tau_b_by_pairs(size, truth_values))
    within = base["within_equal_parameters"]
    assert within["value"] == pytest.approx(within_groups_tau(score_values, truth_values, size))
    same_size = sum(size[i] == size[j] for i, j in itertools.combinations(range(len(archs)), 2))
    assert within["pairs"] == same_size > 0
    low, high = within["ci"]
    assert low <= within["value"] <= high
    assert "baseline" not in correlate({a: {"acc": v} for a, v in zip(archs, score_values)},
                                       {a: {"acc": v} for a, v in zip(archs, truth_values)}, bootstrap=0)


def test_baseline_of_a_space_that_cannot_count_parameters_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from nsas.spaces.nb201 import NB201Space

    def unbuildable(self, arch):
        raise TypeError("build_network() missing 1 required keyword argument: 'vocab'")

    monkeypatch.setattr(NB201Space, "parameter_count", unbuildable)
    scores, truth = _write_files(tmp_path)
    assert main(["correlate", scores, truth, "--baseline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--baseline: cannot count the parameters" in err and "vocab" in err


def test_live_parameters_of_a_space_without_dead_ops_counts_the_built_network():
    from nsas.inspection import count_parameters
    from nsas.spaces import get_space

    space = get_space("darts")
    arch = space.sample(random.Random(0))
    assert space.live_arch(arch) == arch  # DARTS cells concatenate all their nodes: every op is live
    with torch.device("meta"):
        expected = count_parameters(space.build_network(arch))
    assert live_parameters([str(arch)]).tolist() == [expected]


# ---------------------------------------------------------------- CLI
def _write_files(tmp_path):
    scores, truth = _tables(n=15, seed=4)
    lines = ["arch,acc,loss"] + [f"{a},{v['acc']},{v['loss']}" for a, v in scores.items()]
    lines.append(f"{nb201(100)},0.5,0.5")  # only in the scores
    (tmp_path / "scores.csv").write_text("\n".join(lines) + "\n")
    rows = [{"arch": f" {a} ", "acc": v["acc"]} for a, v in truth.items()]
    (tmp_path / "truth.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(tmp_path / "scores.csv"), str(tmp_path / "truth.jsonl")


def test_cli_table_and_json(tmp_path, capsys):
    scores, truth = _write_files(tmp_path)
    assert main(["correlate", scores, truth, "--top-k", "5", "--bootstrap", "100"]) == 0
    out, err = capsys.readouterr()
    for word in ("kendall tau", "spearman rho", "precision@5", "truth rank of top-1", "95% CI", "15"):
        assert word in out
    assert "1 architecture(s) only in" in err and nb201(100) in err
    assert main(["correlate", scores, truth, "--top-k", "5", "10", "--bootstrap", "100", "--json"]) == 0
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert result["n"] == 15
    assert set(result["metrics"]) == {"kendall_tau", "spearman_rho", "precision@5", "precision@10"}
    assert result["only_in_scores"] == {"count": 1, "first": [nb201(100)]}
    assert result["only_in_truth"] == {"count": 0, "first": []}
    low, high = result["metrics"]["spearman_rho"]["ci"]
    assert low <= result["metrics"]["spearman_rho"]["value"] <= high
    assert main(["correlate", scores, truth, "--bootstrap", "50", "--baseline"]) == 0
    out, _ = capsys.readouterr()
    for line in ("kendall tau of live parameters", "spearman rho of live parameters",
                 "kendall tau within equal parameters"):
        assert line in out


@pytest.mark.parametrize(
    "extra, piece",
    [
        (["--key", "top1"], "no column 'top1'; available: acc, loss"),
        (["--truth-key", "loss"], "no key 'loss'; available: acc"),  # loss is not in the truth file
        (["--key", "all", "--key", "acc"], "--key all"),
        (["--key", "acc,loss", "--lower-is-better"], "each takes the direction its name says"),
        (["--top-k", "0"], "--top-k"),
        (["--bootstrap", "-1"], "--bootstrap"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, piece):
    scores, truth = _write_files(tmp_path)
    assert main(["correlate", scores, truth, *extra]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("nsas: error:") and piece in err
    assert "Traceback" not in err and out == ""


def test_cli_bad_number_names_file_and_line(tmp_path, capsys):
    scores, truth = _write_files(tmp_path)
    with open(scores, "a") as f:
        f.write(f"{nb201(200)},high,0\n")
    assert main(["correlate", scores, truth]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"{scores} line 18" in err and "'high'" in err


# ---------------------------------------------------------------- directions
# A hand-made table: the score ranks the five architectures in the order of the truth except for one swap,
# so the true tau is +0.8 whichever way each side is written (acc vs its negation loss, test_acc vs err).
ACC = [10.0, 20.0, 40.0, 30.0, 50.0]
TRUE = [1.0, 2.0, 3.0, 4.0, 5.0]
TAU = 0.8


def _hand_tables():
    archs = [nb201(i) for i in range(5)]
    scores = {a: {"acc": ACC[i], "loss": -ACC[i], "jacov": ACC[i], "params": -ACC[i]} for i, a in enumerate(archs)}
    truth = {a: {"test_acc": TRUE[i], "err": -TRUE[i]} for i, a in enumerate(archs)}
    return scores, truth


@pytest.mark.parametrize("key", ["acc", "loss"])
@pytest.mark.parametrize("truth_key", ["test_acc", "err"])
@pytest.mark.parametrize("given", [None, True, False])
@pytest.mark.parametrize("truth_given", [None, True, False])
def test_tau_sign_never_flips_silently(key, truth_key, given, truth_given, recwarn):
    """Every combination of columns and flags: either tau is the true +0.8, or a warning names the flag that
    was given against its column's name (and the report says which direction each side used)."""
    scores, truth = _hand_tables()
    result = correlate(scores, truth, key=key, truth_key=truth_key, lower_is_better=given,
                       truth_lower_is_better=truth_given, bootstrap=0, top_k=(2,))
    score_lower, truth_lower = key == "loss", truth_key == "err"  # what the names say
    against = [given is not None and given != score_lower, truth_given is not None and truth_given != truth_lower]
    tau = result["metrics"]["kendall_tau"]["value"]
    expected = TAU * (-1) ** sum(against)
    assert tau == pytest.approx(expected)
    assert result["lower_is_better"] == (score_lower if given is None else given)
    assert result["truth_lower_is_better"] == (truth_lower if truth_given is None else truth_given)
    assert result["directions"] == {"score": "by its name" if given is None else "given",
                                    "truth": "by its name" if truth_given is None else "given"}
    assert len(result["warnings"]) == sum(against) == len(recwarn)
    if against[0]:
        assert f"score column {key!r}" in result["warnings"][0]
    if against[1]:
        assert f"truth column {truth_key!r}" in result["warnings"][-1]
    report = format_report(result)
    assert f"score: {key} ({'lower' if result['lower_is_better'] else 'higher'} is better" in report
    assert f"truth: {truth_key} ({'lower' if result['truth_lower_is_better'] else 'higher'} is better" in report


def test_the_score_direction_never_applies_to_the_truth():
    # The command: --key loss --lower-is-better --truth-key test_acc gave -tau before.
    scores, truth = _hand_tables()
    result = correlate(scores, truth, key="loss", truth_key="test_acc", lower_is_better=True, bootstrap=0)
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)
    assert result["truth_lower_is_better"] is False and result["warnings"] == []


@pytest.mark.parametrize("name, lower", [
    ("acc", False), ("test_acc", False), ("accuracy", False), ("top1", False), ("val_acc1", False),
    ("loss", True), ("val_loss", True), ("ppl", True), ("perplexity", True), ("error", True), ("test_err", True),
    ("ce", True), ("jacov", None), ("params", None), ("score", None), ("acc_loss", None),
])
def test_name_direction(name, lower):
    assert name_direction(name) is lower


def test_unknown_name_is_higher_and_reported_as_assumed():
    scores, truth = _hand_tables()
    result = correlate(scores, truth, key="jacov", bootstrap=0)
    assert result["lower_is_better"] is False and result["directions"]["score"] == "assumed"
    assert result["truth_key"] == "test_acc"  # acc is not in the truth: test_acc is preferred over err


def _csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return str(path)


def test_library_reads_a_truth_import_csv(tmp_path):
    from nsas.nasbench import write_truth_csv

    scores, _ = _hand_tables()
    truth = tmp_path / "truth.csv"
    write_truth_csv(truth, [(nb201(i), TRUE[i]) for i in range(5)])  # arch,test_acc: what `nsas truth import` writes
    score_file = _csv(tmp_path / "s.csv", ["arch", "acc", "loss"], [(a, v["acc"], v["loss"]) for a, v in scores.items()])
    import nsas

    result = nsas.correlate(score_file, str(truth), bootstrap=0)
    assert result["key"] == "acc" and result["truth_key"] == "test_acc"
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)
    result = nsas.correlate(score_file, truth, key="loss", bootstrap=0)
    assert result["truth_key"] == "test_acc" and result["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)


def _rank_run(tmp_path, rank_by, space="nb201"):
    run = tmp_path / f"run-{rank_by}"
    run.mkdir()
    (run / "config.yaml").write_text(f"space: {space}\nrank_by: {rank_by}\n")
    # acc and loss disagree on purpose: the acc column ranks in the truth's order, the loss column against it.
    rows = [(nb201(i), ACC[i], ACC[i]) for i in range(5)]
    return _csv(run / "scores.csv", ["arch", "acc", "loss"], rows)


@pytest.mark.parametrize("rank_by, key", [("loss", "loss"), ("acc", "acc")])
def test_cli_default_key_follows_the_runs_rank_by(tmp_path, capsys, rank_by, key):
    scores = _rank_run(tmp_path, rank_by)
    truth = _csv(tmp_path / "truth.csv", ["arch", "test_acc"], [(nb201(i), TRUE[i]) for i in range(5)])
    assert main(["correlate", scores, truth, "--bootstrap", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["key"] == key and result["truth_key"] == "test_acc"
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU if key == "acc" else -TAU)
    assert f"--key {key}: the run ranks by {key}" in err


def test_cli_default_key_outside_a_run_stays_acc(tmp_path, capsys):
    scores = _rank_run(tmp_path, "loss")
    elsewhere = tmp_path / "copy.csv"
    elsewhere.write_text(open(scores).read())
    truth = _csv(tmp_path / "truth.csv", ["arch", "test_acc"], [(nb201(i), TRUE[i]) for i in range(5)])
    assert main(["correlate", str(elsewhere), truth, "--bootstrap", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["key"] == "acc" and "ranks by" not in err


def test_cli_prints_both_directions_and_warns_on_a_mismatch(tmp_path, capsys):
    scores, truth = _hand_tables()
    s = _csv(tmp_path / "s.csv", ["arch", "acc", "loss"], [(a, v["acc"], v["loss"]) for a, v in scores.items()])
    t = _csv(tmp_path / "t.csv", ["arch", "test_acc"], [(a, v["test_acc"]) for a, v in truth.items()])
    assert main(["correlate", s, t, "--key", "loss", "--lower-is-better", "--truth-key", "test_acc",
                 "--bootstrap", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ("score: loss (lower is better, given); truth: test_acc (higher is better, "
                                   "by its name)")
    assert "kendall tau          0.8000" in out and "warning" not in err
    assert main(["correlate", s, t, "--key", "acc", "--lower-is-better", "--bootstrap", "0"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("nsas: warning: --lower-is-better given for the score column 'acc'")
    assert "-0.8000" in out and "score: acc (lower is better, given)" in out


def test_cli_several_keys_one_line_each(tmp_path, capsys):
    scores, truth = _hand_tables()
    header = ["arch", "acc", "loss", "params", "jacov"]
    s = _csv(tmp_path / "s.csv", header, [(a, *(v[c] for c in header[1:])) for a, v in scores.items()])
    t = _csv(tmp_path / "t.csv", ["arch", "test_acc"], [(a, v["test_acc"]) for a, v in truth.items()])
    assert main(["correlate", s, t, "--key", "all", "--bootstrap", "0", "--top-k", "2"]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "truth: test_acc (higher is better, by its name); n = 5"
    body = {line.split()[0]: line.split() for line in lines[3:]}
    assert list(body) == ["acc", "loss", "params", "jacov"]
    assert body["acc"][1:3] == ["higher", "(by"] and body["acc"][4] == "0.8000"
    assert body["loss"][1] == "lower" and body["loss"][4] == "0.8000"
    assert body["params"][1:4] == ["higher", "(assumed)", "-0.8000"]  # -acc, ranked higher-is-better
    assert body["jacov"][3] == "0.8000"
    assert main(["correlate", "--key", "jacov", "--key", "acc", s, t, "--bootstrap", "0", "--json"]) == 0
    out, _ = capsys.readouterr()
    columns = json.loads(out)["columns"]
    assert list(columns) == ["jacov", "acc"]
    assert columns["acc"]["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)


def test_correlate_columns_library():
    scores, truth = _hand_tables()
    results = correlate_columns(scores, truth, "all", bootstrap=0)
    assert list(results) == ["acc", "loss", "jacov", "params"]
    assert {k: round(r["metrics"]["kendall_tau"]["value"], 4) for k, r in results.items()} == {
        "acc": TAU, "loss": TAU, "jacov": TAU, "params": -TAU}
    with pytest.raises(NsasError, match="each takes the direction"):
        correlate_columns(scores, truth, ["acc", "loss"], lower_is_better=True)
    with pytest.raises(NsasError, match="no key 'nope'"):
        correlate_columns(scores, truth, ["acc", "nope"])


def test_truth_default_column_ignores_other_text_columns(tmp_path):
    scores, truth = _hand_tables()
    s = _csv(tmp_path / "s.csv", ["arch", "acc"], [(a, v["acc"]) for a, v in scores.items()])
    rows = [{"arch": a, "name": f"cell {i}", "test_acc": v["test_acc"]} for i, (a, v) in enumerate(truth.items())]
    t = tmp_path / "t.jsonl"
    t.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = correlate(s, t, bootstrap=0)  # the name column is never read as a number
    assert result["truth_key"] == "test_acc" and result["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)
    rows = [{"arch": r["arch"], "name": r["name"], "top1": r["test_acc"]} for r in rows]
    t.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(NsasError, match=r"t.jsonl: several value columns \(name, top1\); name the truth column"):
        correlate(s, t, bootstrap=0)
    assert correlate(s, t, truth_key="top1", bootstrap=0)["metrics"]["kendall_tau"]["value"] == pytest.approx(TAU)
    c = _csv(tmp_path / "t.csv", ["arch", "note", "acc"], [(a, "x", v["test_acc"]) for a, v in truth.items()])
    assert correlate(s, c, bootstrap=0)["truth_key"] == "acc"  # acc is preferred; the text column is never read


def test_cli_comma_separated_keys(tmp_path, capsys):
    scores, truth = _hand_tables()
    s = _csv(tmp_path / "s.csv", ["arch", "acc", "loss"], [(a, v["acc"], v["loss"]) for a, v in scores.items()])
    t = _csv(tmp_path / "t.csv", ["arch", "test_acc"], [(a, v["test_acc"]) for a, v in truth.items()])
    assert main(["correlate", s, t, "--key", "loss,acc", "--bootstrap", "0", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["columns"]) == ["loss", "acc"]


def test_a_proxy_column_with_minus_infinity_ranks_it_last(tmp_path):
    """`nsas rank --proxies jacov` writes -inf for a dead cell; correlate reads it as the worst score."""
    from nsas.correlate import correlate
    cells = [nb201(i) for i in range(6)]
    (tmp_path / "s.csv").write_text("arch,jacov\n" + "".join(f"{a},{v}\n" for a, v in zip(cells, ["-inf", 1, 2, 3, 4, 5])))
    (tmp_path / "t.csv").write_text("arch,acc\n" + "".join(f"{a},{v}\n" for a, v in zip(cells, [10, 20, 30, 40, 50, 60])))
    result = correlate(tmp_path / "s.csv", tmp_path / "t.csv", key="jacov", truth_key="acc")
    assert result["metrics"]["kendall_tau"]["value"] == pytest.approx(1.0)
