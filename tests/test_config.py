"""Options come from the config dataclasses: every key has a flag and help, presets are explicit, recipes fit."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import yaml
from tiny import bench_module

from nsas import study as study_mod
from nsas import train as train_mod
from nsas.cli import build_parser, main
from nsas.config import build_config, config_to_dict, flag_name, read_yaml
from nsas.search import PRESETS, SearchConfig, resolve
from nsas.search_config import passes_per_step
from nsas.study import StudyConfig
from nsas.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [("search", SearchConfig), ("train", TrainConfig), ("study", StudyConfig)]
NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command,cls", COMMANDS)
def test_every_config_key_has_a_flag_with_help(command, cls):
    actions = {a.dest: a for a in _subparser(command)._actions}
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        assert f.name in actions, f"{cls.__name__}.{f.name} has no flag"
        action = actions[f.name]
        assert flag_name(f.name) in action.option_strings
        assert action.help and len(action.help) > 10


def _argv_for(cfg) -> list[str]:
    """Flags that spell out every value of ``cfg``."""
    argv = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, bool):
            argv.append(flag_name(f.name) if value else "--no-" + flag_name(f.name)[2:])
        elif isinstance(value, dict):
            argv += [flag_name(f.name), yaml.safe_dump(value, default_flow_style=True).strip()]
        elif isinstance(value, list):
            argv += [flag_name(f.name), ",".join(value)] if f.metadata.get("parse") else [flag_name(f.name), *value]
        else:
            argv += [flag_name(f.name), "none" if value is None else str(value)]
    return argv


@pytest.mark.parametrize("command,cls", COMMANDS)
def test_flags_spell_every_value(command, cls):
    """A config with a non-default value for every key survives the trip through its own flags."""
    changed = dict(
        search=dict(space="darts", strategy="gdas", loss="wpl", dataset="cifar100", data_dir="/d", epochs=3,
                    steps_per_epoch=7, batch_size=12, augment=False, candidates=5, tau_max=4.0, arch_lr=0.5,
                    train_fraction=0.25, probe=[NB201_ARCH, "x"], bn="recalibrate"),
        train=dict(space="darts", recipe="proxy", nesterov=True, augment=False, data_dir="/d", lr=0.5, cutout=3,
                   schedule="constant", auxiliary_weight=0.4),
        study=dict(methods=["gdas:nsas", "random:ce"], equal_compute=True, search={"lr": 0.1, "epochs": 2},
                   train={"cutout": 4}, truth_recipe="paper", archs=5),
    )[command]
    expected = dataclasses.replace(cls(), **changed)
    args = build_parser(command).parse_args([command, *_argv_for(expected)])
    names = {f.name for f in dataclasses.fields(cls)}
    got = build_config(cls, {k: v for k, v in vars(args).items() if k in names})
    assert got == expected


def test_print_config_prints_the_resolved_yaml_and_runs_nothing(tmp_path, capsys):
    assert main(["search", "--dataset", "cifar10", "--beta", "0.5", "--print-config", "--out", str(tmp_path / "r")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == config_to_dict(resolve(build_parser("search").parse_args(["search", "--dataset", "cifar10",
                                                                                  "--beta", "0.5"])))
    assert printed["beta"] == 0.5 and printed["dataset"] == "cifar10"
    assert not (tmp_path / "r").exists()
    (tmp_path / "printed.yaml").write_text(yaml.safe_dump(printed))  # the printout is a --config file
    assert config_to_dict(_resolved("--config", str(tmp_path / "printed.yaml"), "--preset", "paper")) == printed
    assert main(["train", NB201_ARCH, "--recipe", "paper", "--lr", "0.2", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["lr"] == 0.2 and printed["epochs"] == 200 and printed["recipe"] == "paper"
    assert main(["study", "--seeds", "2", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["seeds"] == 2


def _resolved(*argv: str) -> SearchConfig:
    return resolve(build_parser("search").parse_args(["search", *argv]))


def test_presets_are_explicit():
    quick = _resolved()
    assert (quick.dataset, quick.epochs, quick.channels) == ("cifar10-mini", 40, 8)
    # choosing a data set or a space keeps the quick preset (it used to switch to the paper's 50 epochs)
    assert _resolved("--dataset", "cifar10").epochs == 40
    assert _resolved("--space", "darts").epochs == 5
    paper = _resolved("--preset", "paper", "--space", "darts")
    assert (paper.dataset, paper.epochs, paper.channels, paper.cells) == ("cifar10", 50, 16, 8)
    assert _resolved("--preset", "paper", "--space", "darts", "--strategy", "gdas").epochs == 240
    assert _resolved("--preset", "paper", "--epochs", "3").epochs == 3  # flags override the preset
    rnn = _resolved("--preset", "quick", "--space", "darts-rnn")
    assert (rnn.dataset, rnn.lr, rnn.epochs) == ("ptb", 20.0, 5)  # the paper's RNN optimizer at a quick budget
    assert set(PRESETS) >= {"quick", "paper"}


def test_quick_nb201_preset_is_the_benchmarks_best_and_other_losses_get_its_compute():
    quick = _resolved()
    assert (quick.space, quick.strategy, quick.loss, quick.sampling, quick.lr) == ("nb201", "random", "ce",
                                                                                  "functions", 0.1)
    assert passes_per_step(config_to_dict(quick)) == 1
    assert (quick.bn, quick.rank_by) == ("recalibrate", "loss")  # the benchmark's scorer (round 7)
    assert (_resolved("--space", "darts").bn, _resolved("--space", "darts").rank_by) == ("batch", "acc")
    # a loss of 9 passes a step (nsas, M = 8) gets 40 / 9 epochs; the settings the user gives count
    nsas = _resolved("--loss", "nsas")
    assert (nsas.epochs, nsas.sampling, passes_per_step(config_to_dict(nsas))) == (4, "functions", 9)
    assert _resolved("--loss", "nsas", "--archive-size", "3").epochs == 10
    assert _resolved("--loss", "nsas", "--shared-batch").epochs == 40  # one pass a step
    assert _resolved("--loss", "nsas", "--epochs", "7").epochs == 7  # flags still win
    gdas = _resolved("--strategy", "gdas")  # GDAS keeps the paper's loss and the short budget
    assert (gdas.loss, gdas.sampling, gdas.epochs, gdas.lr) == ("nsas", "uniform", 5, 0.025)
    assert (_resolved("--space", "darts").loss, _resolved("--space", "darts-rnn").loss) == ("nsas", "nsas")


def test_nb201_cpu_preset_keeps_its_passes_whatever_the_loss():
    budget = 20 * 390
    for argv, loss in ((), "ce"), (("--loss", "nsas"), "nsas"), (("--strategy", "gdas"), "nsas"):
        cfg = _resolved("--preset", "nb201-cpu", *argv)
        passes = cfg.epochs * cfg.steps_per_epoch * passes_per_step(config_to_dict(cfg))
        assert cfg.loss == loss and abs(passes - budget) <= 20 * passes_per_step(config_to_dict(cfg)) / 2, argv
        assert (cfg.eval_batches, cfg.score_batch_size) == (4, 256)  # the benchmark's 1,024 images at batch 256


def test_yaml_config_keeps_the_preset_it_is_layered_on(tmp_path):
    (tmp_path / "c.yaml").write_text("space: nb201\nbeta: 0.5\n")
    assert _resolved("--config", str(tmp_path / "c.yaml")).epochs == 40
    (tmp_path / "c.yaml").write_text("space: nb201\nloss: nsas\n")  # the file's loss sets the quick epochs
    assert _resolved("--config", str(tmp_path / "c.yaml")).epochs == 4
    assert _resolved("--config", str(tmp_path / "c.yaml"), "--preset", "paper").epochs == 50


def test_underscore_flags_are_refused_with_usage_error(capsys):
    assert main(["search", "--batch_size", "8", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "--batch_size" in err and "flags use dashes: --batch-size" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("recipe", sorted((ROOT / "nsas" / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_recipe_files_fit_the_config(recipe):
    values = read_yaml(recipe)
    space = {"cifar": "darts", "nb201": "nb201", "ptb": "darts-rnn"}[recipe.name.split("-")[0]]
    cfg = build_config(TrainConfig, {**values, "space": space}, source=str(recipe))
    assert cfg.recipe == recipe.stem.split("-")[1]
    assert train_mod.recipe_config(space, cfg.recipe).epochs == cfg.epochs


@pytest.mark.parametrize("path", sorted(ROOT.glob("results/*/study.yaml")), ids=lambda p: p.parent.name)
def test_committed_study_configs_fit_the_code(path):
    cfg = build_config(StudyConfig, read_yaml(path), source=str(path))
    assert read_yaml(path).items() <= config_to_dict(cfg).items()
    for method in cfg.methods:
        study_mod.parse_method(method)
    build_config(SearchConfig, {**cfg.search, "space": cfg.space}, source=f"{path} search:")
    train_mod.recipe_config(cfg.space, cfg.truth_recipe, **cfg.train)


def test_nb201_cpu_preset_is_the_ranking_benchmarks_search(capsys, monkeypatch):
    ranking = bench_module("ranking", monkeypatch)

    cfg = SearchConfig.preset("nb201-cpu", loss="ce")
    for key, value in {**ranking.SUPERNET, **ranking.METHODS["ce-functions"]}.items():
        assert getattr(cfg, key) == value, key
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.dataset) == (20, 390, "cifar10")
    assert (cfg.bn, cfg.rank_by) == ("recalibrate", "loss")  # each cell's own BatchNorm statistics, ranked by loss
    assert cfg.epochs * cfg.steps_per_epoch == 7800  # the benchmark's budget in ce steps
    assert ranking.job_epochs(7800) == cfg.epochs and 7800 // cfg.epochs == cfg.steps_per_epoch
    assert (cfg.score_batch_size, cfg.eval_batches * cfg.score_batch_size) == (ranking.SCORE_BATCH, ranking.SCORE_IMAGES)
    # a benchmark job is the preset's search, so `nsas rank RUN` at its defaults scores as the benchmark does
    job = dataclasses.asdict(ranking.job_config("ce-functions", 0, 20, 390))
    # selection is not scoring: the benchmark judges the scores; the preset selects by the fused score
    assert cfg.select_by == "fused" and job["select_by"] == "score"
    run_control = {"dataset", "device", "probe_count", "select_rounds", "select_samples", "log_every", "select_by"}
    assert {k: v for k, v in dataclasses.asdict(cfg).items() if k not in run_control} == \
        {k: v for k, v in job.items() if k not in run_control}
    gdas = SearchConfig.preset("nb201-cpu", strategy="gdas", loss="nsas")  # sampling is RandomNAS's option
    assert (gdas.sampling, gdas.lr, gdas.epochs) == ("uniform", 0.1, 20)
    assert main(["search", "--preset", "nb201-cpu", "--space", "darts", "--print-config"]) == 2
    assert "nb201-cpu preset is for the nb201 space" in capsys.readouterr().err


def test_an_unknown_space_in_a_config_file_says_how_to_make_a_custom_one_visible(tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("space: mine\n")
    assert main(["search", "--config", str(config), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown search space 'mine'" in err and "NSAS_PLUGINS" in err and len(err.strip().splitlines()) == 1
