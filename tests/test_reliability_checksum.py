"""Checkpoints carry a SHA-256 of their content: one flipped bit is a one-line error naming the file."""

from __future__ import annotations

import pytest
import torch

from nsas.checkpoint import FORMAT, VERSION, content_sha256, load_checkpoint, save_checkpoint
from nsas.errors import CheckpointError


def _state():
    return {"model": {"w": torch.arange(4096, dtype=torch.float32) + 0.5, "b": torch.ones(3)}, "step": 7,
            "rng": (1, 2, [3])}


def test_a_flipped_bit_in_the_largest_tensor_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _state(), kind="search")
    assert torch.equal(load_checkpoint(path, kind="search")["model"]["w"], _state()["model"]["w"])
    data = bytearray(path.read_bytes())
    at = data.find((torch.arange(4096, dtype=torch.float32) + 0.5).numpy().tobytes()[:64]) + 2048 * 4 + 1
    assert at > 2048 * 4
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256") as info:
        load_checkpoint(path, kind="search")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_checkpoints_written_before_the_checksum_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "version": VERSION, "kind": "train", "state": _state()}, path)
    assert load_checkpoint(path, kind="train")["step"] == 7


def test_the_checksum_covers_plain_values_too(tmp_path):
    state = _state()
    assert content_sha256(state) == content_sha256(_state())
    state["step"] = 8
    assert content_sha256(state) != content_sha256(_state())
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state(), kind="search")
    payload = torch.load(path, weights_only=True)
    payload["state"]["step"] = 8  # an edited value with the old checksum
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path, kind="search")


def test_search_resume_refuses_a_corrupted_checkpoint_in_one_line(tmp_path, capsys, monkeypatch):
    import nsas.data
    from nsas.cli import main
    from tiny import fake_dataset, tiny_search_config

    from nsas.search import search

    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)
    run = tmp_path / "run"
    search(tiny_search_config("nb201"), run, progress=False)
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    biggest = max((t for t in payload["state"]["supernet"].values()), key=lambda t: t.numel())
    biggest.view(-1)[biggest.numel() // 2] += 1e-3
    torch.save(payload, run / "checkpoint.pt")
    assert main(["search", "--resume", "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SHA-256" in err[0] and "checkpoint.pt" in err[0], err
