"""`nsas export`: every format reloads and computes what the original network computes."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import nsas.data
from nsas.cli import main
from nsas.errors import NsasError
from nsas.export import FORMATS, exportable
from nsas.spaces import get_space
from nsas.train import recipe_config, train
from tiny import fake_dataset

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
TRACED = ("torchscript", "export", "onnx")


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A `nsas train` run of ARCH on tiny fake images (one epoch, so its weights differ from initialisation)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path_factory.mktemp("export") / "train"
    cfg = recipe_config("nb201", "proxy", dataset="fake-images", epochs=1, channels=4, cells=1, batch_size=16,
                        eval_batch_size=20, device="cpu")
    train(cfg, ARCH, run, progress=False)
    yield run
    mp.undo()


def reload(fmt: str, path):
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "export":
        return torch.export.load(path).module()
    raise AssertionError(fmt)


def onnx_outputs(path, x):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: cannot run the ONNX file")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_train_run_exports_with_its_trained_weights(train_run, tmp_path, fmt):
    if fmt == "onnx" and importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the onnx extra (onnx, onnxscript) is not installed")
    out = tmp_path / f"net.{fmt}"
    assert main(["export", str(train_run), "--format", fmt, "--out", str(out)]) == 0
    original = exportable(str(train_run)).network.eval()
    trained = torch.load(train_run / "checkpoint.pt", weights_only=True)["state"]["model"]
    fresh = get_space("nb201").build_network(get_space("nb201").parse(ARCH), channels=4, cells=1, num_classes=5)
    assert all(torch.equal(v, trained[k]) for k, v in original.state_dict().items())
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())  # weights are not initial
    x = torch.randn(3, 3, 32, 32)  # a batch size other than the trace's
    with torch.no_grad():
        expected = original(x)
        if fmt == "state_dict":
            fresh.load_state_dict(torch.load(out, weights_only=True))
            got = fresh.eval()(x)
        elif fmt == "onnx":
            got = onnx_outputs(out, x)
        else:
            got = reload(fmt, out)(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    meta = json.loads((tmp_path / f"net.{fmt}.json").read_text())
    assert meta["arch"] == ARCH and meta["format"] == fmt and meta["weights"].endswith("checkpoint.pt")


def test_arch_with_state_dict_weights_round_trips(tmp_path):
    first = tmp_path / "w.pt"
    assert main(["export", ARCH, "--channels", "4", "--cells", "1", "--out", str(first)]) == 0
    weights = torch.load(first, weights_only=True)
    weights = {k: v + 0.5 if v.is_floating_point() else v for k, v in weights.items()}  # "trained"
    torch.save(weights, tmp_path / "trained.pt")
    out = tmp_path / "net.ts"
    assert main(["export", ARCH, "--channels", "4", "--cells", "1", "--weights", str(tmp_path / "trained.pt"),
                 "--format", "torchscript", "--out", str(out)]) == 0
    net = get_space("nb201").build_network(get_space("nb201").parse(ARCH), channels=4, cells=1)
    net.load_state_dict(weights)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out))(x), net.eval()(x), rtol=1e-4, atol=1e-4)


def test_mismatched_weights_and_train_run_sizes_are_refused(train_run, tmp_path, capsys):
    other = "|skip_connect~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    assert main(["export", other, "--weights", str(train_run), "--out", str(tmp_path / "x.pt")]) == 2
    assert "not " in capsys.readouterr().err
    with pytest.raises(NsasError, match="recorded size"):
        exportable(str(train_run), channels=8)


def test_search_run_exports_its_best_pick(tmp_path):
    run = tmp_path / "search"
    run.mkdir()
    (run / "config.yaml").write_text("space: nb201\n")
    (run / "selected.json").write_text(json.dumps([{"arch": ARCH, "acc": 50.0}, {"arch": "bad", "acc": 10.0}]))
    out = tmp_path / "pick.pt2"
    assert main(["export", str(run), "--channels", "4", "--cells", "1", "--format", "export", "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "pick.pt2.json").read_text())
    assert meta["arch"] == ARCH and meta["weights"] is None and meta["options"] == {"channels": 4, "cells": 1}
    assert torch.export.load(out).module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_onnx_without_the_extra_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import nsas.export

    real = importlib.util.find_spec
    monkeypatch.setattr(nsas.export.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["export", ARCH, "--channels", "4", "--cells", "1", "--format", "onnx",
                 "--out", str(tmp_path / "a.onnx")]) == 2
    assert "pip install 'nsas[onnx]'" in capsys.readouterr().err and not (tmp_path / "a.onnx").exists()


def test_the_json_beside_an_export_rebuilds_a_train_run_of_non_default_size(train_run, tmp_path, capsys):
    out = tmp_path / "w.pt"
    assert main(["export", str(train_run), "--out", str(out)]) == 0
    meta = json.loads((tmp_path / "w.pt.json").read_text())
    assert meta["options"]["channels"] == 4 and meta["options"]["cells"] == 1 and meta["options"]["num_classes"] == 5
    space = get_space(meta["space"])
    net = space.build_network(space.parse(meta["arch"]), **meta["options"])  # the README's reload recipe
    net.load_state_dict(torch.load(out, weights_only=True))
    # and the export can be --weights without repeating the size flags
    assert main(["export", ARCH, "--weights", str(out), "--out", str(tmp_path / "again.pt")]) == 0
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert all(torch.equal(v, again[k]) for k, v in net.state_dict().items())


def test_an_export_whose_weights_changed_is_refused(train_run, tmp_path, capsys):
    out = tmp_path / "w.pt"
    assert main(["export", str(train_run), "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    next(iter(state.values())).view(-1)[0] += 1.0
    torch.save(state, out)
    assert main(["export", ARCH, "--weights", str(out), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SHA-256" in err[0] and str(out) in err[0], err


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", ["empty", "pickle", "garbage"])
def test_weights_that_are_empty_or_a_crafted_pickle_are_one_line(tmp_path, capsys, content):
    weights = tmp_path / "w.pt"
    if content == "empty":
        weights.write_bytes(b"")
    elif content == "pickle":
        torch.save({"x": _Evil()}, weights)
    else:
        weights.write_bytes(b"\x80\x04not a pickle at all")
    code = main(["export", ARCH, "--weights", str(weights), "--channels", "4", "--cells", "1",
                 "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(weights) in err[0], err
    assert not (tmp_path / "o.pt").exists()


def test_a_failed_export_keeps_the_old_file_and_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    import errno

    out = tmp_path / "o.pt"
    out.write_bytes(b"the old export")
    (tmp_path / ".o.pt.999999999.abcd1234.tmp").write_bytes(b"left by a killed export")

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(["export", ARCH, "--channels", "4", "--cells", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left" in err[0] and str(out) in err[0], err
    assert out.read_bytes() == b"the old export" and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_output_names_every_file_written(tmp_path, capsys, fmt):
    """ONNX keeps the weights in FILE.data beside FILE: the command says so, and names every file it wrote."""
    if fmt == "onnx" and importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the onnx extra (onnx, onnxscript) is not installed")
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"net.{fmt}"
    assert main(["export", ARCH, "--channels", "4", "--cells", "1", "--format", fmt, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = sorted(p.name for p in folder.iterdir())
    assert len(written) >= 2 and all(str(folder / name) in printed for name in written), (written, printed)
    if fmt == "onnx":
        assert "net.onnx.data" in written and "copy them together" in printed
        meta = json.loads((folder / "net.onnx.json").read_text())
        assert meta["files"] == ["net.onnx", "net.onnx.data"]
