"""Run-directory files survive a kill in the middle of a write."""

from __future__ import annotations

import pytest

from nsas.errors import NsasError
from nsas.rundir import MetricsWriter, read_metrics


def test_half_written_last_line_is_dropped_on_read_and_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"ste')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    writer = MetricsWriter(path, resume_step=2)
    writer.write({"step": 3, "kind": "step"})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_corrupt_line_in_the_middle_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(NsasError, match="line 2"):
        read_metrics(tmp_path)


def test_fresh_writer_truncates(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 9}\n')
    MetricsWriter(path).write({"step": 1})
    assert read_metrics(tmp_path) == [{"step": 1}]


# ---- one writer, no silent overwrite (nsas.rundir.run_directory) ----------------------------------
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from nsas.cli import main  # noqa: E402
from nsas.rundir import HOLDER_NAME, run_directory  # noqa: E402

SEARCH = ("search", "--space", "nb201", "--dataset", "fake-images", "--epochs", "1", "--channels", "4", "--cells",
          "1", "--batch-size", "8", "--steps-per-epoch", "2", "--select-rounds", "1", "--select-samples", "2",
          "--quiet")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys, monkeypatch):
    import nsas.data
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path / "run"
    with run_directory(run):
        holder = json.loads((run / HOLDER_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"]
        code = main([*SEARCH, "--out", str(run)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "in use by another nsas run" in err[0] and f"pid {os.getpid()}" in err[0]
        with pytest.raises(NsasError, match="in use"):
            with run_directory(run):
                pass
    assert not (run / HOLDER_NAME).exists() and not (run / "metrics.jsonl").exists()
    assert main([*SEARCH, "--out", str(run)]) == 0  # free again once the first writer is done


def test_a_lock_left_by_kill_9_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    script = ("import os, signal, sys; sys.path.insert(0, sys.argv[2]); from nsas.rundir import run_directory\n"
              "with run_directory(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(run), os.getcwd()], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    dead = json.loads((run / HOLDER_NAME).read_text())["pid"]
    (run / ".checkpoint.pt.4242.abcd1234.tmp").write_bytes(b"torn")  # what a kill inside a write leaves
    with run_directory(run):
        assert json.loads((run / HOLDER_NAME).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert f"pid {dead}" in err and "taking it over" in err
    assert not list(run.glob(".*.tmp"))


def test_soft_lock_where_flock_is_missing(tmp_path, monkeypatch):
    import filelock

    def no_flock(self, *args, **kwargs):
        raise NotImplementedError("no flock")

    monkeypatch.setattr(filelock.FileLock, "acquire", no_flock)
    run = tmp_path / "run"
    with run_directory(run):
        with pytest.raises(NsasError, match=f"pid {os.getpid()}"):
            with run_directory(run):
                pass
    assert not (run / HOLDER_NAME).exists()
    (run / HOLDER_NAME).write_text(json.dumps({"pid": 2**22 + 12345, "host": __import__("socket").gethostname(),
                                               "started": "then"}))
    with run_directory(run):  # a holder of this host that no longer runs
        assert json.loads((run / HOLDER_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("name", ["selected.json", "summary.json", "metrics.jsonl", "checkpoint.pt"])
def test_results_are_never_overwritten_without_force(tmp_path, capsys, monkeypatch, name):
    import nsas.data
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text('{"old": 1}\n')
    code = main([*SEARCH, "--out", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and name in err[0] and "--force" in err[0], err
    assert (run / name).read_text() == '{"old": 1}\n' and not (run / "config.yaml").exists()
    if name != "checkpoint.pt":
        assert main([*SEARCH, "--out", str(run), "--resume"]) == 2
        assert "no checkpoint.pt" in capsys.readouterr().err
    assert main([*SEARCH, "--out", str(run), "--force"]) == 0
    assert (run / "selected.json").read_text() != '{"old": 1}\n'


def test_a_run_that_never_wrote_results_can_be_restarted(tmp_path, monkeypatch):
    import nsas.data
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("space: nb201\n")
    (run / "metrics.jsonl").write_text("")
    assert main([*SEARCH, "--out", str(run)]) == 0


def test_train_refuses_to_overwrite_and_resume_still_works(tmp_path, capsys, monkeypatch):
    import nsas.data
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    run = tmp_path / "t"
    flags = ["--dataset", "fake-images", "--epochs", "1", "--channels", "4", "--cells", "1", "--batch-size", "16",
             "--eval-batch-size", "20", "--device", "cpu", "--quiet", "--out", str(run)]
    assert main(["train", arch, *flags]) == 0
    result = (run / "result.json").read_text()
    (run / "checkpoint.pt").unlink()
    assert main(["train", arch, *flags]) == 2
    err = capsys.readouterr().err
    assert "result.json" in err and "--force" in err and (run / "result.json").read_text() == result


def test_progress_lines_go_to_stdout_and_warnings_to_stderr(tmp_path, capfd, monkeypatch):
    """`nsas search > log` keeps the per-epoch lines: information on stdout, warnings on stderr."""
    import nsas.data
    from nsas.rundir import setup_logging
    from tiny import fake_dataset

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    argv = [a for a in SEARCH if a != "--quiet"] + ["--epochs", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    for line in ("epoch 1/2: probe accuracy", "epoch 2/2: probe accuracy", "selected architectures"):
        assert line in out and line not in err, (out, err)
    log = setup_logging(None)
    log.info("an information line")
    log.warning("a warning line")
    out, err = capfd.readouterr()
    assert "an information line" in out and "an information line" not in err
    assert "a warning line" in err and "a warning line" not in out
