"""Round 6 exploration script (results/ranking/tune-swa/; moved here from there, otherwise as it ran on the tune half): live snapshots vs a weight average (SWA) of one ce-functions run.

Trains the benchmark's ce-functions job epoch by epoch (20 epochs x 390 steps, the same schedule as a `run` job);
from epoch --start on, averages the weights at each epoch's end (torch.optim.swa_utils.AveragedModel) and
scores the probe with the live weights and with the average at --points.
"""
import argparse, json, time, os
from pathlib import Path
os.environ.setdefault("OMP_NUM_THREADS", "1")
import ranking as r
import yaml

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, required=True)
p.add_argument("--out", type=Path, required=True)
p.add_argument("--set", nargs="*", default=[])
p.add_argument("--start", type=int, default=10)
p.add_argument("--points", nargs="+", type=int, default=[10, 15, 20])
p.add_argument("--avg-every", type=int, default=0, help="average every N steps instead of each epoch end")
p.add_argument("--split", default="tune")
a = p.parse_args()
overrides = {k: yaml.safe_load(v) for k, _, v in (i.partition("=") for i in a.set)}
truth = r.read_truth(r.TRUTH)
probe, _ = r.probe_and_candidates(truth, a.split, 200, 0)
from torch.optim.swa_utils import AveragedModel
from nsas.rank import score_archs
cfg, search = r._search("ce-functions", a.seed, 20, 390, a.out / "runs" / f"s{a.seed}", overrides)
parsed = [search.space.parse(x) for x in probe]
batches = search.eval_set
avg = None
out = a.out / f"swa-s{a.seed}.jsonl"
for epoch in range(1, 21):
    search.train(until_epoch=epoch)
    if epoch >= a.start:
        if avg is None:
            avg = AveragedModel(search.supernet)
        else:
            avg.update_parameters(search.supernet)
    if epoch in a.points:
        for kind, model in (("live", search.supernet), ("swa", avg.module if avg is not None else None)):
            if model is None:
                continue
            t0 = time.time()
            rows = score_archs(model, parsed, batches)
            m = r.metrics({x["arch"]: [x["acc"], x["loss"]] for x in rows}, truth, probe, [])
            rec = {"epoch": epoch, "kind": kind, "seed": a.seed, "set": overrides, "start": a.start,
                   "steps": search.global_step, "tau": m["tau"], "tau_loss": m["tau_loss"],
                   "within": m["tau_within_size"], "score_s": time.time() - t0,
                   "scores": {x["arch"]: [x["acc"], x["loss"]] for x in rows}}
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(epoch, kind, round(m["tau"], 3), round(m["tau_within_size"], 3), flush=True)
