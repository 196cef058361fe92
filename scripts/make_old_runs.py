"""Make tests/data/old-runs/<version>/: run directories written by an earlier nsas, for tests/test_old_runs.py.

Run it with that version's code first on the path, from this repository's root:

    git worktree add /tmp/nsas-old <commit>
    PYTHONPATH=/tmp/nsas-old python scripts/make_old_runs.py --version <commit> --out tests/data/old-runs

It writes, with the version's own `nsas search` and `nsas rank`, on the embedded cifar10-mini data:
- ``finished/``: a finished 2-epoch nb201 NSAS search of a 4-channel supernet, and ``finished-scores.csv``,
  that version's ``nsas rank finished --sample 6 --seed 1`` of it;
- ``cut/``: the same search (its config.yaml but a checkpoint every 3 steps) stopped after its first epoch (a checkpoint at step 3, as a crash leaves it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

FLAGS = ["--space", "nb201", "--dataset", "cifar10-mini", "--loss", "nsas", "--epochs", "2",
         "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "4", "--cells", "1", "--eval-batches", "1",
         "--select-rounds", "1", "--select-samples", "2", "--archive-size", "2", "--pool-size", "4",
         "--probe-count", "2", "--device", "cpu", "--seed", "3", "--quiet"]


class _Stop(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", required=True, help="the commit the code on the path is")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as the test suite runs (tests/conftest.py): float sums then match to the bit
    import nsas
    from nsas.cli import main as nsas_main
    from nsas.search import SearchConfig, search

    out = args.out / args.version
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    assert nsas_main(["search", *FLAGS, "--checkpoint-every", "0", "--out", str(out / "finished")]) == 0
    assert nsas_main(["rank", str(out / "finished"), "--sample", "6", "--seed", "1",
                      "--out", str(out / "finished-scores.csv"), "--quiet"]) == 0

    class StopAfterFirstEpoch:
        def on_step_end(self, run, record):
            if run.global_step == 3:  # the checkpoint of step 3 is written before the callbacks run
                raise _Stop

        def on_epoch_end(self, run, record):
            pass

    import yaml

    values = yaml.safe_load((out / "finished" / "config.yaml").read_text())  # the finished run's (preset included)
    cfg = SearchConfig(**{**values, "checkpoint_every": 3})
    try:
        search(cfg, out / "cut", progress=False, callbacks=[StopAfterFirstEpoch()])
    except _Stop:
        pass
    for run in ("finished", "cut"):
        for name in ("log.txt", ".nsas-run.json", ".nsas-run.lock"):
            (out / run / name).unlink(missing_ok=True)  # host paths and times; not part of the record
    (out / "VERSION").write_text(f"{args.version}\nnsas {getattr(nsas, '__version__', '?')} at {nsas.__file__}\n"
                                 f"python {sys.version.split()[0]}; written by scripts/make_old_runs.py\n")
    print(subprocess.run(["du", "-sh", str(out)], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
