"""`nsas train`: stand-alone training, run directory, exact resume, recipes, errors (tiny CPU configs)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import yaml

import nsas.checkpoint
import nsas.data
import nsas.data.batches
import nsas.train as train_mod
from nsas.checkpoint import load_checkpoint
from nsas.cli import build_parser, main
from nsas.config import config_to_dict, read_yaml, write_yaml
from nsas.errors import NsasError
from nsas.inspection import count_parameters
from nsas.rundir import read_metrics
from nsas.spaces import get_space
from nsas.spaces import darts_net
from nsas.spaces.darts_rnn_net import activation_regularisation
from nsas.train import RECIPE_DIR, RECIPE_FAMILY, RECIPES, Trainer, TrainConfig, recipe_config, train

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
# cifar10-mini, 100 training images in 4 batches of 25
TINY_NB201 = dict(dataset="cifar10-mini", channels=4, cells=1, train_fraction=0.02, batch_size=25,
                  eval_batch_size=50, device="cpu", log_every=2)
TINY_FLAGS = ["--dataset", "cifar10-mini", "--channels", "4", "--cells", "1", "--train-fraction", "0.02",
              "--batch-size", "25", "--device", "cpu", "--quiet"]


class Stop(Exception):
    """Stands for the process being killed."""


@pytest.fixture(autouse=True)
def small_test_split(monkeypatch):
    """cifar10-mini with its first 100 test images: evaluation stays cheap on 2 shared cores."""
    load = nsas.data.load_dataset

    def small(name, data_dir=None, download=True):
        ds = load(name, data_dir, download)
        if name == "cifar10-mini":
            ds = nsas.data.ImageDataset(ds.name, ds.train_x, ds.train_y, ds.test_x[:100], ds.test_y[:100],
                                        ds.classes, ds.mean, ds.std)
        return ds

    monkeypatch.setattr(nsas.data, "load_dataset", small)


@pytest.fixture
def ptb_dir(tmp_path) -> Path:
    """A tiny PTB-shaped corpus: 12 words, lines of 8."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(12)]
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    for split, lines in (("train", 30), ("valid", 8), ("test", 8)):
        text = "".join(" ".join(rng.choice(words) for _ in range(8)) + "\n" for _ in range(lines))
        (root / "ptb" / f"ptb.{split}.txt").write_text(text)
    return root


def stop_after_save(monkeypatch, when) -> list[dict]:
    """Make the checkpoint write that satisfies ``when(state)`` the last thing the run does."""
    saved: list[dict] = []
    real = train_mod.save_checkpoint

    def save(path, state, *, kind):
        real(path, state, kind=kind)
        saved.append(state)
        if when(state):
            raise Stop

    monkeypatch.setattr(train_mod, "save_checkpoint", save)
    return saved


def assert_same_state(a: dict, b: dict) -> None:
    for key in ("epoch", "step", "global_step", "val_losses", "optimizer_name", "sums"):
        if key == "sums":
            assert {k: v for k, v in a[key].items() if k != "seconds"} == \
                   {k: v for k, v in b[key].items() if k != "seconds"}
        else:
            assert a[key] == b[key], key
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys() and opt_a
    for i in opt_a:
        for k in opt_a[i]:
            assert torch.equal(torch.as_tensor(opt_a[i][k]), torch.as_tensor(opt_b[i][k])), (i, k)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def evaluate_by_hand(state: dict, cfg: TrainConfig, arch) -> tuple[float, float]:
    """Test accuracy (%) and mean cross-entropy of saved weights on the (100-image) cifar10-mini test split."""
    net = train_mod.build_model(cfg, get_space(cfg.space), get_space(cfg.space).parse(str(arch)), 10)
    net.load_state_dict(state)
    ds = nsas.data.load_dataset("cifar10-mini")
    x = (ds.test_x.float() / 255 - torch.tensor(ds.mean)[:, None, None]) / torch.tensor(ds.std)[:, None, None]
    with torch.no_grad():
        out = net.eval()(x)
    logits = out[0] if isinstance(out, tuple) else out  # (100, 10)
    acc = 100.0 * float((logits.argmax(1) == ds.test_y).float().mean())
    return acc, float(torch.nn.functional.cross_entropy(logits, ds.test_y))


def epoch_records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run_dir) if r["kind"] == "epoch"]


# ---- images -------------------------------------------------------------------
def test_nb201_resume_after_epoch_1_is_bit_identical(tmp_path, monkeypatch):
    cfg = recipe_config("nb201", "proxy", epochs=2, **TINY_NB201)
    full = train(cfg, NB201_ARCH, tmp_path / "full", progress=False)

    # result.json and the run directory
    assert json.loads((tmp_path / "full" / "result.json").read_text()) == full
    assert full["arch"] == NB201_ARCH and full["space"] == "nb201" and full["recipe"] == "proxy"
    torch.manual_seed(0)
    net = get_space("nb201").build_network(NB201_ARCH, channels=4, cells=1, num_classes=10)
    assert full["parameters"] == count_parameters(net) and full["macs"] > 0
    # test accuracy and loss, recomputed by hand from the saved weights on the 100 test images
    saved = load_checkpoint(tmp_path / "full" / "checkpoint.pt", kind="train")["model"]
    assert (full["test_acc"], full["test_loss"]) == pytest.approx(evaluate_by_hand(saved, cfg, NB201_ARCH), rel=1e-5)
    assert full["epochs"] == 2 and full["steps"] == 8 and full["wall_seconds"] > 0
    assert read_yaml(tmp_path / "full" / "config.yaml") == config_to_dict(cfg)
    records = epoch_records(tmp_path / "full")
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["lr"] == pytest.approx(0.05) and records[1]["lr"] == pytest.approx(0.025)  # cosine
    assert all({"train_loss", "train_acc", "test_acc", "test_loss"} <= set(r) for r in records)
    assert records[-1]["test_acc"] == full["test_acc"]
    assert [r["step"] for r in read_metrics(tmp_path / "full") if r["kind"] == "step"] == [2, 4, 6, 8]

    # the same run killed right after its epoch-1 checkpoint, then resumed
    stop_after_save(monkeypatch, lambda state: state["epoch"] == 1)
    with pytest.raises(Stop):
        train(cfg, NB201_ARCH, tmp_path / "cut", progress=False)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="train")["epoch"] == 1
    monkeypatch.setattr(train_mod, "save_checkpoint", nsas.checkpoint.save_checkpoint)
    resumed = train(cfg, NB201_ARCH, tmp_path / "cut", resume=True, progress=False)

    assert_same_state(load_checkpoint(tmp_path / "full" / "checkpoint.pt", kind="train"),
                      load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="train"))
    assert {k: v for k, v in resumed.items() if k != "wall_seconds"} == \
           {k: v for k, v in full.items() if k != "wall_seconds"}
    assert epoch_records(tmp_path / "cut") == records  # no duplicated or lost records


def test_darts_auxiliary_head_and_drop_path_run(tmp_path, monkeypatch):
    probs = []
    real_drop_path = darts_net.drop_path

    def spy(x, p):
        probs.append(p)
        return real_drop_path(x, p)

    monkeypatch.setattr(darts_net, "drop_path", spy)
    arch = get_space("darts").sample(random.Random(3))
    cfg = recipe_config("darts", "paper", dataset="cifar10-mini", channels=4, cells=2, epochs=2,
                        train_fraction=0.02, batch_size=50, eval_batch_size=100, eval_every=2, device="cpu")
    assert (cfg.auxiliary_weight, cfg.drop_path, cfg.cutout) == (0.4, 0.2, 16)
    result = train(cfg, arch, tmp_path / "run", progress=False)

    # drop-path is 0 in epoch 1 and 0.2 * 1 / 2 in epoch 2 (DARTS's linear ramp), and it ran
    assert probs and set(probs) == {0.1}
    assert [r["drop_path"] for r in epoch_records(tmp_path / "run")] == [0.0, 0.1]
    # the auxiliary head exists, was trained, and is not counted
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt", kind="train")["model"]
    torch.manual_seed(cfg.seed)
    init = train_mod.build_model(cfg, get_space("darts"), arch, 10).state_dict()
    aux = [k for k in state if k.startswith("auxiliary_head.")]
    assert aux and not torch.equal(state["auxiliary_head.classifier.weight"], init["auxiliary_head.classifier.weight"])
    plain = get_space("darts").build_network(arch, channels=4, cells=2, num_classes=10)
    assert result["parameters"] == count_parameters(plain) < sum(v.numel() for k, v in state.items()
                                                                   if "running" not in k and "num_batches" not in k)
    assert (result["test_acc"], result["test_loss"]) == pytest.approx(evaluate_by_hand(state, cfg, arch), rel=1e-5)


# ---- text ---------------------------------------------------------------------
def test_darts_rnn_asgd_switch_and_mid_epoch_resume(tmp_path, monkeypatch, ptb_dir):
    # validation loss that rises every epoch: DARTS's rule switches to ASGD after epoch 3 (nonmono 1)
    switch = Trainer._maybe_switch_to_asgd
    monkeypatch.setattr(Trainer, "_maybe_switch_to_asgd", lambda self, loss: switch(self, float(self.epoch)))
    arch = get_space("darts-rnn").sample(random.Random(1))
    cfg = recipe_config("darts-rnn", "proxy", data_dir=str(ptb_dir), hidden=8, batch_size=4, bptt=5,
                        eval_batch_size=4, epochs=4, asgd_nonmono=1, checkpoint_every=5, device="cpu")
    full = train(cfg, arch, tmp_path / "full", progress=False)
    assert full["optimizer"] == "asgd"
    assert [r["optimizer"] for r in epoch_records(tmp_path / "full")] == ["sgd", "sgd", "sgd", "asgd"]
    for key in ("valid_ppl", "test_ppl"):
        assert 1.0 < full[key] < 100.0  # a 12-word (+ <eos>) vocabulary
    assert full["test_loss"] == pytest.approx(math.log(full["test_ppl"]))
    assert full["parameters"] == count_parameters(
        get_space("darts-rnn").build_network(arch, vocab=13, hidden=8))

    # killed at the first mid-epoch checkpoint under ASGD (the hidden state is carried), then resumed
    stop_after_save(monkeypatch, lambda s: s["optimizer_name"] == "asgd" and s["step"] > 0)
    with pytest.raises(Stop):
        train(cfg, arch, tmp_path / "cut", progress=False)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="train")
    assert state["epoch"] == 3 and state["step"] > 0 and state["hidden"].shape == (4, 8)
    monkeypatch.setattr(train_mod, "save_checkpoint", nsas.checkpoint.save_checkpoint)
    resumed = train(cfg, arch, tmp_path / "cut", resume=True, progress=False)

    assert_same_state(load_checkpoint(tmp_path / "full" / "checkpoint.pt", kind="train"),
                      load_checkpoint(tmp_path / "cut" / "checkpoint.pt", kind="train"))
    assert {k: v for k, v in resumed.items() if k != "wall_seconds"} == \
           {k: v for k, v in full.items() if k != "wall_seconds"}
    assert epoch_records(tmp_path / "cut") == epoch_records(tmp_path / "full")


def test_asgd_evaluates_with_averaged_weights(tmp_path, ptb_dir):
    arch = get_space("darts-rnn").sample(random.Random(2))
    cfg = recipe_config("darts-rnn", "proxy", data_dir=str(ptb_dir), hidden=8, batch_size=4, bptt=5,
                        eval_batch_size=4, epochs=1, asgd_nonmono=2, device="cpu")
    trainer = Trainer(cfg, arch, tmp_path, progress=False)
    for loss in (3.0, 2.0, 2.5):  # improving, then worse than the best but within the last 2 epochs
        trainer._maybe_switch_to_asgd(loss)
    assert trainer.optimizer_name == "sgd"
    trainer._maybe_switch_to_asgd(3.5)  # worse than min(losses[:-2]) = 3.0
    assert trainer.optimizer_name == "asgd" and isinstance(trainer.optimizer, torch.optim.ASGD)
    batches = list(trainer.data.train.epoch(0))[:3]
    for x, y in batches:
        trainer.train_step(x, y)
    weight = trainer.model.encoder.weight
    before = weight.detach().clone()
    average = trainer.optimizer.state[weight]["ax"]
    assert not torch.equal(before, average)
    with trainer.averaged_weights():
        assert torch.equal(weight, average)
    assert torch.equal(weight, before)


# ---- errors -------------------------------------------------------------------
def test_nan_loss_stops_with_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    forward = Trainer.forward_loss

    def poisoned(self, x, y):
        loss, reg, correct, count = forward(self, x, y)
        return (loss * float("nan") if (self.epoch, self.step) == (1, 1) else loss), reg, correct, count

    monkeypatch.setattr(Trainer, "forward_loss", poisoned)
    saved = stop_after_save(monkeypatch, lambda state: False)
    out = tmp_path / "run"
    assert main(["train", NB201_ARCH, *TINY_FLAGS, "--epochs", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epoch 2, step 2" in err and "intact" in err and "nan" in err
    assert len(saved) == 1 and saved[0]["epoch"] == 1
    state = load_checkpoint(out / "checkpoint.pt", kind="train")
    assert state["epoch"] == 1 and state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "result.json").exists()


def test_corrupt_checkpoint_and_resume_misuse_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_yaml(run_dir / "config.yaml", config_to_dict(recipe_config("nb201", "proxy", epochs=1, **TINY_NB201)))
    (run_dir / "arch.txt").write_text(NB201_ARCH + "\n")
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    assert main(["train", "--resume", "--out", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.pt" in err and "corrupt" in err

    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "3"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert main(["train", NB201_ARCH, "--out", str(run_dir)]) == 2  # a run is there already
    assert "--resume" in capsys.readouterr().err
    assert main(["train", NB201_ARCH, "--space", "nb201", "--drop-path", "0.2"]) == 2
    assert "drop_path" in capsys.readouterr().err


# ---- recipes and arguments -----------------------------------------------------
def test_every_recipe_loads_into_train_config():
    files = sorted(RECIPE_DIR.glob("*.yaml"))
    used = {f"{family}-{recipe}.yaml" for family in RECIPE_FAMILY.values() for recipe in RECIPES}
    assert {f.name for f in files} == used  # no recipe missing, none orphaned
    for space, family in RECIPE_FAMILY.items():
        for recipe in RECIPES:
            values = yaml.safe_load((RECIPE_DIR / f"{family}-{recipe}.yaml").read_text())
            cfg = recipe_config(space, recipe)
            assert cfg.recipe == recipe and cfg.space == space
            assert {k: getattr(cfg, k) for k in values} == values  # every key known, none coerced away

    cifar = recipe_config("darts", "paper")  # docs/METHOD.md §8 evaluation settings
    assert (cifar.epochs, cifar.batch_size, cifar.channels, cifar.cells, cifar.lr, cifar.lr_min) == \
           (600, 96, 36, 20, 0.025, 0.0)
    assert (cifar.momentum, cifar.weight_decay, cifar.grad_clip, cifar.cutout) == (0.9, 3e-4, 5.0, 16)
    assert (cifar.auxiliary_weight, cifar.drop_path, cifar.schedule) == (0.4, 0.2, "cosine")
    nb = recipe_config("nb201", "paper")
    assert (nb.epochs, nb.channels, nb.cells, nb.batch_size, nb.lr, nb.nesterov, nb.weight_decay, nb.cutout) == \
           (200, 16, 5, 256, 0.1, True, 5e-4, 0)
    ptb = recipe_config("darts-rnn", "paper")
    assert (ptb.epochs, ptb.hidden, ptb.batch_size, ptb.bptt, ptb.lr, ptb.weight_decay, ptb.grad_clip) == \
           (3600, 850, 64, 35, 20.0, 8e-7, 0.25)
    assert (ptb.schedule, ptb.momentum, ptb.asgd_nonmono, ptb.dataset) == ("constant", 0.0, 5, "ptb")
    with pytest.raises(NsasError, match="recipe"):
        recipe_config("nb201", "fast")


def test_flags_override_config_override_recipe(tmp_path):
    darts = str(get_space("darts").sample(random.Random(0)))
    (tmp_path / "c.yaml").write_text("epochs: 7\nlr: 0.3\ncutout: 0\n")
    (tmp_path / "g.txt").write_text(darts + "\n")
    args = build_parser("train").parse_args(
        ["train", f"@{tmp_path / 'g.txt'}", "--recipe", "paper", "--config", str(tmp_path / "c.yaml"),
         "--lr", "0.2", "--no-augment"])
    cfg, arch = train_mod.resolve(args)
    assert str(arch) == darts and cfg.space == "darts"  # detected from the genotype's shape
    assert (cfg.epochs, cfg.lr, cfg.cutout, cfg.augment) == (7, 0.2, 0, False)
    assert (cfg.batch_size, cfg.channels, cfg.auxiliary_weight) == (96, 36, 0.4)  # the paper recipe
    with pytest.raises(NsasError, match="unknown key"):
        train_mod.build_config(TrainConfig, {"epoch": 3})


def test_arch_from_a_search_run_directory(tmp_path, capsys):
    search_dir = tmp_path / "search"
    search_dir.mkdir()
    best = get_space("nb201").sample(random.Random(5))
    other = get_space("nb201").sample(random.Random(6))
    (search_dir / "selected.json").write_text(json.dumps([{"arch": str(best), "acc": 50.0},
                                                          {"arch": str(other), "acc": 40.0}]))
    write_yaml(search_dir / "config.yaml", {"space": "nb201", "strategy": "random", "dataset": "cifar10-mini",
                                            "epochs": 1})
    out = tmp_path / "train"
    flags = [f for f in TINY_FLAGS if f not in ("--dataset", "cifar10-mini")]
    assert main(["train", str(search_dir), "--recipe", "proxy", "--epochs", "1", *flags, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["arch"] == str(best) and result["space"] == "nb201"
    assert result["dataset"] == "cifar10-mini"  # the search's data set, not the recipe's cifar10
    assert "test accuracy" in capsys.readouterr().out

    (search_dir / "selected.json").unlink()
    assert main(["train", str(search_dir), "--out", str(tmp_path / "x")]) == 2
    assert "selected.json" in capsys.readouterr().err


# ---- the DARTS recipe for darts-rnn ----------------------------------------------
DARTS_V2 = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
            "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")


def test_paper_recipe_for_ptb_has_the_darts_regularisers_and_batch_sizes():
    ptb = recipe_config("darts-rnn", "paper")
    assert (ptb.ar_alpha, ptb.tar_beta, ptb.random_bptt, ptb.max_bptt_delta) == (0.0, 1e-3, True, 20)
    assert (ptb.eval_batch_size, ptb.test_batch_size) == (10, 1)
    with pytest.raises(NsasError, match="darts-rnn space only"):
        TrainConfig(space="nb201", tar_beta=1e-3)


def test_activation_regularisation_formula_by_hand():
    states = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]], [[3.0, 0.0]]])  # (T=3, B=1, H=2)
    dropped = torch.tensor([[[0.0, 2.0]], [[2.0, 0.0]], [[0.0, 0.0]]])
    # TAR: differences (1, 0), (2, -1) -> mean of squares (1 + 0 + 4 + 1) / 4 = 1.5
    tar = activation_regularisation(states, dropped, alpha=0.0, beta=0.1)
    assert float(tar) == pytest.approx(0.15)
    # AR: mean of dropped squares (4 + 4) / 6
    ar = activation_regularisation(states, dropped, alpha=3.0, beta=0.0)
    assert float(ar) == pytest.approx(3.0 * 8 / 6)
    both = activation_regularisation(states, dropped, alpha=3.0, beta=0.1)
    assert float(both) == pytest.approx(0.15 + 4.0)
    assert float(activation_regularisation(states[:1], dropped[:1], alpha=0.0, beta=1.0)) == 0.0


def test_trainer_adds_ar_and_tar_of_the_cell_outputs(tmp_path, ptb_dir):
    arch = get_space("darts-rnn").parse(DARTS_V2)
    cfg = recipe_config("darts-rnn", "paper", data_dir=str(ptb_dir), hidden=8, batch_size=4, bptt=5,
                        ar_alpha=2.0, tar_beta=0.5, dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0,
                        dropoute=0.0, device="cpu")
    trainer = Trainer(cfg, arch, tmp_path, progress=False)
    x, y = next(trainer.data.train.epoch(0))
    with torch.no_grad():
        _, reg, _, _ = trainer.forward_loss(x, y)
        _, _, states, dropped = trainer.model(x, None, return_states=True)
    assert torch.equal(states, dropped)  # no output dropout here, so AR sees the raw outputs
    expected = 2.0 * states.pow(2).mean() + 0.5 * (states[1:] - states[:-1]).pow(2).mean()
    assert float(reg) == pytest.approx(float(expected), rel=1e-6) and float(reg) > 0


def test_random_bptt_window_lengths_follow_the_awd_lstm_rule():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([nsas.data.batches.random_window_length(35, 20, g) for _ in range(4000)])
    assert int(lengths.min()) >= 5 and int(lengths.max()) <= 55
    # mean 35 with probability 0.95 and 17.5 otherwise (sd 5, truncated to an int): about 34.1 - 0.5
    assert 33.0 < float(lengths.float().mean()) < 34.2
    assert 0.04 < float((lengths < 25).float().mean()) < 0.10  # mostly the bptt / 2 draws
    capped = [nsas.data.batches.random_window_length(40, 0, g) for _ in range(400)]
    assert max(capped) == 40 and 0.35 < capped.count(40) / 400 < 0.65  # half the normal draws exceed the cap


def test_random_bptt_windows_tile_the_data_and_depend_on_seed_and_epoch():
    tokens = torch.arange(4 * 1001)
    batches = nsas.data.TextBatches(tokens, batch_size=4, bptt=35, random_bptt=True, seed=3)
    windows = batches.windows(0)
    assert windows[0][0] == 0 and all(a + t == b for (a, t), (b, _) in zip(windows, windows[1:]))
    assert windows[-1][0] + windows[-1][1] == 1000  # every row but the last (a target only) is an input
    assert len({t for _, t in windows}) > 5 and batches.count(0) == len(windows)
    assert batches.windows(0) == windows and batches.windows(1) != windows
    again = nsas.data.TextBatches(tokens, batch_size=4, bptt=35, random_bptt=True, seed=3)
    assert [x.shape[0] for x, _ in again.epoch(0, start=2)] == [t for _, t in windows[2:]]
    for x, y in again.epoch(0):
        assert torch.equal(y, x + 1)  # the data is arange, laid out in columns: targets are the next token


def test_learning_rate_scales_with_the_window_length(tmp_path, ptb_dir):
    cfg = recipe_config("darts-rnn", "paper", data_dir=str(ptb_dir), hidden=8, batch_size=4, bptt=10,
                        device="cpu")
    assert train_mod.learning_rate(cfg, 0, 10) == cfg.lr == 20.0
    assert train_mod.learning_rate(cfg, 0, 13) == pytest.approx(20.0 * 13 / 10)
    trainer = Trainer(cfg, get_space("darts-rnn").parse(DARTS_V2), tmp_path, progress=False)
    assert (trainer.data.valid.data.size(1), trainer.data.test.data.size(1)) == (10, 1)  # DARTS's eval batches
    for x, y in list(trainer.data.train.epoch(0))[:3]:
        trainer.train_step(x, y)
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(20.0 * x.size(0) / 10)


def test_darts_v2_recurrent_cell_training_loss_falls(tmp_path, shared_data):
    """The published DARTS_V2 cell with the paper recipe (AR/TAR, random BPTT, lr 20), tiny, on the first
    lines of the real PTB."""
    root = tmp_path / "data" / "ptb"
    root.mkdir(parents=True)
    words = {"<eos>"}
    for split, lines in (("train", 400), ("valid", 40), ("test", 40)):
        text = "".join((shared_data / "ptb" / f"ptb.{split}.txt").read_text().splitlines(keepends=True)[:lines])
        (root / f"ptb.{split}.txt").write_text(text)
        words.update(text.split())
    cfg = recipe_config("darts-rnn", "paper", data_dir=str(tmp_path / "data"), hidden=16, batch_size=8,
                        epochs=3, device="cpu", log_every=0)
    result = train(cfg, DARTS_V2, tmp_path / "run", progress=False)
    losses = [r["train_loss"] for r in epoch_records(tmp_path / "run")]
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0], losses
    assert result["test_ppl"] < len(words) / 2  # well below a uniform guess over the vocabulary
