"""Hostile input through the CLI: every case is one line on stderr and exit status 2, before any work."""

from __future__ import annotations

import pytest

from nsas.cli import main

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def one_line_error(capsys, *argv: str) -> str:
    """Run the CLI; assert exit status 2 and a single ``nsas: error:`` line; return that line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("nsas"), err
    return lines[0]


def test_out_under_a_file_or_naming_a_file(capsys, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    line = one_line_error(capsys, "search", "--out", str(blocker / "run"), "--quiet")
    assert str(blocker / "run") in line and "Not a directory" in line
    line = one_line_error(capsys, "search", "--out", str(blocker), "--quiet")
    assert str(blocker) in line and "exists" in line


@pytest.mark.parametrize("text,words", [
    ("1: 2\n", "key 1 is not a name"),
    ("[]\n", "mapping"),
    ("0\n", "mapping"),
    ("false\n", "mapping"),
    ("lr: [1\n", "not valid YAML"),
])
def test_config_files_that_are_not_a_mapping_of_names(capsys, tmp_path, text, words):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    line = one_line_error(capsys, "search", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert words in line and str(config) in line
    assert not (tmp_path / "run").exists()


def test_files_that_are_not_utf8(capsys, tmp_path):
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"lr: 0.1\n\xff\xfe\x00garbage")
    line = one_line_error(capsys, "search", "--config", str(binary), "--out", str(tmp_path / "run"), "--quiet")
    assert "not UTF-8" in line and str(binary) in line
    line = one_line_error(capsys, "inspect", f"@{binary}")
    assert "not UTF-8" in line and str(binary) in line


@pytest.mark.parametrize("yaml_text,key", [
    ("lr: -1\n", "lr"), ("lr: .nan\n", "lr"), ("lr: .inf\n", "lr"), ("momentum: 1.0\n", "momentum"),
    ("weight_decay: -0.1\n", "weight_decay"), ("tau_min: 0\n", "tau_min"), ("tau_max: -3\n", "tau_max"),
    ("recalibrate_batches: 0\n", "recalibrate_batches"), ("arch_lr: 0\n", "arch_lr"), ("beta: -1\n", "beta"),
    ("grad_clip: -1\n", "grad_clip"), ("candidates: 0\n", "candidates"),
])
def test_search_values_out_of_range_are_refused_before_work(capsys, tmp_path, yaml_text, key):
    config = tmp_path / "c.yaml"
    config.write_text("dataset: cifar10-mini\n" + yaml_text)
    line = one_line_error(capsys, "search", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert line.startswith(f"nsas: error: {key} must be in ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags,key", [(["--lr", "-1"], "lr"), (["--lr", "nan"], "lr"),
                                       (["--momentum", "1.5"], "momentum"), (["--weight-decay", "-1"], "weight_decay")])
def test_train_values_out_of_range(capsys, tmp_path, flags, key):
    line = one_line_error(capsys, "train", NB201, *flags, "--out", str(tmp_path / "run"), "--quiet")
    assert line.startswith(f"nsas: error: {key} must be in ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", ""])
def test_unknown_devices(capsys, tmp_path, device):
    line = one_line_error(capsys, "search", "--device", device, "--out", str(tmp_path / "s"), "--quiet")
    assert "device must be" in line
    line = one_line_error(capsys, "train", NB201, "--device", device, "--out", str(tmp_path / "t"), "--quiet")
    assert "device must be" in line
    line = one_line_error(capsys, "rank", str(tmp_path / "s"), "--sample", "1", "--device", device)
    assert "device must be" in line


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-5", "soon"])
def test_dist_timeout_must_be_positive_and_finite(capsys, tmp_path, monkeypatch, value):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("NSAS_DIST_TIMEOUT", value)
    line = one_line_error(capsys, "search", "--out", str(tmp_path / "run"), "--quiet")
    assert "NSAS_DIST_TIMEOUT" in line and repr(value) in line


@pytest.mark.parametrize("yaml_text,words", [
    ("search: 5\n", "'search'"),
    ("search: {archive_size: x}\n", "archive_size"),
    ("search: {lr: -1}\n", "lr must be in"),
    ("train: {momentum: 2}\n", "momentum must be in"),
])
def test_study_sub_configs_are_checked_before_work(capsys, tmp_path, yaml_text, words):
    config = tmp_path / "study.yaml"
    config.write_text(yaml_text)
    line = one_line_error(capsys, "study", "--config", str(config), "--out", str(tmp_path / "st"), "--quiet")
    assert words in line
    assert not (tmp_path / "st").exists()


def test_rank_out_is_checked_before_loading_the_run(capsys, tmp_path):
    # The run does not exist: an error about --out proves --out was checked first.
    line = one_line_error(capsys, "rank", str(tmp_path / "no-run"), "--all", "--out", str(tmp_path))
    assert "cannot write" in line and str(tmp_path) in line
    line = one_line_error(capsys, "rank", str(tmp_path / "no-run"), "--all", "--out", str(tmp_path / "x" / "s.csv"))
    assert "cannot write" in line and "does not exist" in line


def test_correlate_tables_with_huge_fields_and_numbers(capsys, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text(f'arch,acc\n"{NB201}",1\n')
    field = tmp_path / "field.csv"
    field.write_text(f'arch,acc\n"{NB201}",1\n"{"x" * 200_000}",2\n')
    assert "field" in one_line_error(capsys, "correlate", str(field), str(truth))
    for digits in (400, 5000):
        table = tmp_path / f"d{digits}.json"
        table.write_text(f'[{{"arch": "{NB201}", "acc": {"9" * digits}}}]')
        line = one_line_error(capsys, "correlate", str(table), str(truth))
        assert str(table) in line and "line 1" in line and len(line) < 300


def test_metrics_lines_that_are_not_objects(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("space: nb201\n")
    (run / "metrics.jsonl").write_text('{"kind": "step", "step": 1}\n[1, 2]\n')
    line = one_line_error(capsys, "plot", str(run))
    assert "metrics.jsonl line 2" in line and "object" in line


def test_full_disk_while_writing_a_checkpoint(capsys, tmp_path, monkeypatch):
    import errno

    import torch

    import nsas.data
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes")
        raise OSError(errno.ENOSPC, "No space left on device")  # as the kernel reports it: no file name

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "r"
    line = one_line_error(capsys, "search", "--space", "nb201", "--dataset", "fake-images", "--epochs", "1",
                          "--channels", "4", "--cells", "1", "--batch-size", "8", "--steps-per-epoch", "2",
                          "--out", str(run), "--quiet")
    assert "No space left on device" in line and str(run / "checkpoint.pt") in line
    assert not list(run.glob(".*.tmp")) and not (run / "checkpoint.pt").exists()
    assert (run / "config.yaml").read_text().startswith("space: nb201")


def test_out_of_memory_is_one_line(capsys, tmp_path, monkeypatch):
    import nsas.data

    def huge(*args, **kwargs):
        raise MemoryError  # as numpy raises it for an allocation the machine cannot give

    monkeypatch.setattr(nsas.data, "load_dataset", huge)
    line = one_line_error(capsys, "search", "--out", str(tmp_path / "run"), "--quiet")
    assert "out of memory" in line


def test_full_disk_while_appending_metrics_names_the_file(tmp_path):
    from pathlib import Path

    from nsas.cli import describe_os_error
    from nsas.rundir import MetricsWriter

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux) to stand for a full disk")
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    writer.path = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with pytest.raises(OSError) as err:
        writer.write({"kind": "step", "step": 1})
    assert describe_os_error(err.value) == "No space left on device: /dev/full"


def test_full_disk_while_logging_is_one_line_naming_the_log(capsys, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    import nsas.data
    from tiny import fake_dataset

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux) to stand for a full disk")
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path / "r"
    run.mkdir()
    os.symlink("/dev/full", run / "log.txt")  # every write to the log fails with ENOSPC
    line = one_line_error(capsys, "search", "--space", "nb201", "--dataset", "fake-images", "--epochs", "1",
                          "--channels", "4", "--cells", "1", "--batch-size", "8", "--steps-per-epoch", "2",
                          "--out", str(run), "--quiet")
    assert line == f"nsas: error: No space left on device: {run / 'log.txt'}"
    from nsas.rundir import setup_logging

    setup_logging(None, quiet=True)  # the next run replaces the failed log handler without an error


@pytest.mark.parametrize("flags,words", [
    (["--archive-forgetting", "-1"], "archive_forgetting must not be negative"),
    (["--archive-forgetting", "50", "--archive-max-age", "50"], "two ways to renew the archive"),
    (["--archive-forgetting", "50", "--loss", "nsas-random"], "nsas-random chooses it at random"),
])
def test_conflicting_archive_variants_are_refused_before_work(capsys, tmp_path, flags, words):
    line = one_line_error(capsys, "search", "--loss", "nsas", *flags, "--out", str(tmp_path / "run"), "--quiet")
    assert line.startswith("nsas: error: ") and words in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("yaml_text,message", [("rank_by: speed\n", "rank_by must be acc or loss"),
                                               ("bn: frozen\n", "bn must be batch or recalibrate")])
def test_unknown_scorer_settings_in_a_config_file_are_one_line_errors(capsys, tmp_path, yaml_text, message):
    config = tmp_path / "c.yaml"
    config.write_text("dataset: cifar10-mini\n" + yaml_text)
    line = one_line_error(capsys, "search", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert message in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("exc", [TypeError("unsupported operand"), IndexError("list index out of range"),
                                 RecursionError("maximum recursion depth exceeded"), ValueError("")])
def test_an_unexpected_exception_is_one_line_with_its_logged_traceback(capsys, tmp_path, monkeypatch, exc):
    import nsas.inspection

    def boom(args):
        raise exc

    monkeypatch.setattr(nsas.inspection, "run", boom)
    monkeypatch.setenv("NSAS_ERROR_DIR", str(tmp_path))
    code = main(["inspect", NB201])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("nsas: internal error:") and type(exc).__name__ in lines[0]
    logged = list(tmp_path.glob("nsas-error-*.txt"))
    assert len(logged) == 1 and str(logged[0]) in lines[0]
    assert "Traceback (most recent call last)" in logged[0].read_text() and "boom" in logged[0].read_text()


def test_the_last_resort_without_a_writable_log_folder(capsys, tmp_path, monkeypatch):
    import nsas.inspection

    monkeypatch.setattr(nsas.inspection, "run", lambda args: 1 / 0)
    monkeypatch.setenv("NSAS_ERROR_DIR", str(tmp_path / "missing"))
    assert main(["inspect", NB201]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "ZeroDivisionError" in lines[0] and "not writable" in lines[0], lines


@pytest.mark.parametrize("text", ["lr: 0.1\nepochs: 2\nlr: 0.5\n", "train:\n  lr: 1\n  lr: 2\n"])
def test_a_yaml_key_given_twice_is_refused_naming_it(capsys, tmp_path, text):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    line = one_line_error(capsys, "search", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert "'lr'" in line and "twice" in line and str(config) in line
    assert not (tmp_path / "run").exists()
