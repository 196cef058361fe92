"""Few-shot supernets (nsas/few_shot.py): routing, the split, per-split archives, exact resume, scoring."""

from __future__ import annotations

import json

import pytest
import torch

import nsas.data
from nsas.cli import main
from nsas.errors import NsasError
from nsas.evaluate import score_archs
from nsas.few_shot import FewShotSupernet
from nsas.search import Search, SearchConfig, load_search_run, search
from nsas.spaces import get_space
from nsas.spaces.nb201 import OPS, NB201Arch
from test_search import _cut_after_an_epoch_and_resume, _final_state, assert_same_run
from tiny import fake_dataset, tiny_batch, tiny_search_config, tiny_supernet

SPACE = get_space("nb201")
EDGE = 3  # 3 <- 0: the edge from the cell input straight to its output


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    monkeypatch.setattr(nsas.data, "load_dataset", fake_dataset)


def _arch(op_on_edge: str) -> NB201Arch:
    ops = ["nor_conv_3x3"] * 6
    ops[EDGE] = op_on_edge
    return NB201Arch(tuple(ops))


def _calls(module: FewShotSupernet) -> list[int]:
    counts = [0] * len(module.subnets)
    for k, sub in enumerate(module.subnets):
        sub.register_forward_hook(lambda *_, k=k: counts.__setitem__(k, counts[k] + 1))
    return counts


def test_before_the_split_every_path_runs_copy_0_and_after_it_only_its_own_copy():
    model = FewShotSupernet(tiny_supernet("nb201"), SPACE, EDGE)
    counts = _calls(model)
    x, _ = tiny_batch("nb201")
    for op in OPS[1:]:
        model(x, _arch(op))
    assert counts == [4, 0, 0, 0, 0]
    model.split()
    counts[:] = [0] * 5
    for op in OPS[1:]:
        model(x, _arch(op))
    assert counts == [0, 1, 1, 1, 1]  # one forward of each copy: only the sampled copy computes


def test_split_copies_the_warm_up_weights_and_momentum_into_fresh_tensors():
    model = FewShotSupernet(tiny_supernet("nb201"), SPACE, EDGE)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = tiny_batch("nb201")
    torch.nn.functional.cross_entropy(model(x, _arch("skip_connect")), y).backward()
    opt.step()
    model.split(opt)
    first = dict(model.subnets[0].named_parameters())
    for sub in model.subnets[1:]:
        for name, p in sub.named_parameters():
            assert torch.equal(p, first[name]) and p.data_ptr() != first[name].data_ptr()
            if first[name] in opt.state:
                buf, src = opt.state[p]["momentum_buffer"], opt.state[first[name]]["momentum_buffer"]
                assert torch.equal(buf, src) and buf.data_ptr() != src.data_ptr()


def test_a_step_after_the_split_changes_only_the_sampled_copy():
    model = FewShotSupernet(tiny_supernet("nb201"), SPACE, EDGE)
    model.split()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    before = [[p.detach().clone() for p in sub.parameters()] for sub in model.subnets]
    x, y = tiny_batch("nb201")
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x, _arch("nor_conv_1x1")), y).backward()
    opt.step()
    changed = [any(not torch.equal(a, p) for a, p in zip(old, sub.parameters()))
               for old, sub in zip(before, model.subnets)]
    assert changed == [False, False, True, False, False]
    assert all(p.grad is None for k, sub in enumerate(model.subnets) if k != 2 for p in sub.parameters())


def test_routing_goes_by_the_representative_so_equal_functions_share_one_copy_and_score():
    # a cell whose edge 3<-0 ... every path into node 3 except through dead node 2 is 'none': the
    # representative of the function may carry another op on the split edge than the string does
    model = FewShotSupernet(tiny_supernet("nb201"), SPACE, 1)  # edge 2<-0
    model.split()
    dead = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|none~2|")
    rep = SPACE.same_function(dead)
    assert rep.ops[1] != dead.ops[1]  # the test means something only if the two differ on the split edge
    assert model.route(dead) == model.route(rep) == SPACE.split_of(rep, 1)
    batches = [tiny_batch("nb201", seed) for seed in range(2)]
    rows = score_archs(model, [dead, rep], batches)
    assert rows[0]["loss"] == rows[1]["loss"]


def _search_dir(tmp_path, **overrides):
    values = dict(few_shot_edge=EDGE, epochs=2, steps_per_epoch=4, archive_size=2)
    cfg = tiny_search_config("nb201", **{**values, **overrides})
    return cfg, search(cfg, tmp_path, progress=False)


def test_a_few_shot_search_splits_after_the_warm_up_with_one_archive_per_copy(tmp_path):
    cfg, result = _search_dir(tmp_path / "run", epochs=2, few_shot_warmup=0.5)
    state = _final_state(tmp_path / "run")
    assert bool(state["supernet"]["is_split"]) and len(state["split_objectives"]) == 5
    archive = json.loads((tmp_path / "run" / "archive.json").read_text())
    assert [s["op"] for s in archive["splits"]] == list(OPS)
    for k, split in enumerate(archive["splits"]):  # every member constrains the copy it was trained in
        assert all(SPACE.split_of(SPACE.same_function(SPACE.parse(a)), EDGE) == k for a in split["members"])
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if r["kind"] == "step"] == list(range(1, 9))
    assert result.archive == [a for s in archive["splits"] for a in s["members"]]


def test_before_the_split_the_copies_other_than_0_are_untouched(tmp_path, monkeypatch):
    cfg = tiny_search_config("nb201", few_shot_edge=EDGE, epochs=2, steps_per_epoch=3, few_shot_warmup=1.0)
    initial = {}
    original = Search.train

    def train(self, until_epoch=None):
        initial.update({k: v.clone() for k, v in self.supernet.state_dict().items()})
        return original(self, until_epoch)

    monkeypatch.setattr(Search, "train", train)
    search(cfg, tmp_path, progress=False)
    final = _final_state(tmp_path)["supernet"]
    assert not bool(final["is_split"])
    moved = {k.split(".")[1] for k, v in final.items() if k.startswith("subnets.") and not torch.equal(v, initial[k])}
    assert moved == {"0"}


@pytest.mark.parametrize("archive", ["split", "shared"])
def test_a_cut_few_shot_search_resumes_bit_identically_across_the_split(tmp_path, monkeypatch, archive):
    # epochs 2, warm-up 0.5: the run is cut after epoch 1, just before the split
    cfg = tiny_search_config("nb201", few_shot_edge=EDGE, few_shot_archive=archive, epochs=2, steps_per_epoch=3,
                             archive_size=2)
    search(cfg, tmp_path / "straight", progress=False)
    _cut_after_an_epoch_and_resume(cfg, tmp_path, monkeypatch)
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_rank_scores_a_few_shot_run_as_the_run_itself_does(tmp_path):
    cfg, _ = _search_dir(tmp_path / "run")
    _, supernet, _, _ = load_search_run(tmp_path / "run")
    assert isinstance(supernet, FewShotSupernet) and bool(supernet.is_split)
    archs = tmp_path / "archs.txt"
    chosen = [str(_arch(op)) for op in OPS]
    archs.write_text("\n".join(chosen) + "\n")
    assert main(["rank", str(tmp_path / "run"), "--archs", str(archs), "--out", str(tmp_path / "s.csv")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == 1 + len(chosen)
    # the five copies were trained apart: the same cell string scored by copy 0 (warm-up) differs
    scores = {line.split(",")[0]: line for line in lines[1:]}
    assert len(set(v.split(",", 1)[1] for v in scores.values())) > 1


def test_few_shot_refuses_what_it_cannot_split():
    with pytest.raises(NsasError, match="edges 0-5"):
        SearchConfig(space="nb201", few_shot_edge=6)
    with pytest.raises(NsasError, match="RandomNAS"):
        SearchConfig(space="nb201", strategy="gdas", few_shot_edge=0)
    with pytest.raises(NsasError, match="cannot be split"):
        SearchConfig(space="darts", few_shot_edge=0)
    with pytest.raises(NsasError, match=r"few_shot_warmup must be in \[0, 1\]"):
        SearchConfig(space="nb201", few_shot_edge=0, few_shot_warmup=1.5)
    assert main(["search", "--few-shot-edge", "9", "--print-config"]) == 2
