"""Run the committed study on this 2-core machine: two worker processes, then `nsas study`.

    python bench/nb201_study.py        # from the repository root; writes into results/nb201-cifar10-study/

`nsas study` runs its stages one after another in one process; on a 2-core
CPU two single-threaded workers finish twice as fast. Each worker runs the
study's own search and ground-truth jobs (the same configs `nsas study`
would build, split by index parity); the final `nsas study` call finds them
done, scores every supernet and writes the report. Rerunning resumes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "results" / "nb201-cifar10-study"
OUT = HERE / "run"
WORKER = """
import sys, torch
torch.set_num_threads(1)
from nsas.cli import main
from nsas.config import build_config, read_yaml
from nsas.search import search
from nsas.study import Study, StudyConfig
from nsas.train import recipe_config, train
part, stage = int(sys.argv[1]), sys.argv[2]
cfg = build_config(StudyConfig, read_yaml({config!r}), source="study")
study = Study(cfg, {out!r})
if stage == "searches":
    for i, job in enumerate(study.jobs):
        run = study.dir / "searches" / job.name
        if i % 2 == part and not (run / "summary.json").exists():
            print("search", job.name, flush=True)
            search(study.search_config(job), run, resume=(run / "checkpoint.pt").exists(), progress=False)
else:
    archs = study.truth_archs()
    tcfg = recipe_config(cfg.space, cfg.truth_recipe, dataset=cfg.dataset, data_dir=cfg.data_dir,
                         device=cfg.device, **cfg.train)
    for i, arch in enumerate(archs):
        run = study.dir / "truth" / f"{{i:03d}}"
        if i % 2 == part and not (run / "result.json").exists():
            print("truth", i, arch, flush=True)
            train(tcfg, arch, run, resume=(run / "checkpoint.pt").exists(), progress=False)
"""


def workers(stage: str) -> None:
    code = WORKER.format(out=str(OUT), config=str(HERE / "study.yaml"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(part), stage]) for part in (0, 1)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"a {stage} worker failed")


def main() -> None:
    start = time.time()
    OUT.mkdir(exist_ok=True)
    times = {}
    for stage in ("searches", "truth"):
        t0 = time.time()
        workers(stage)
        times[stage] = time.time() - t0
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "nsas", "study", "--config", str(HERE / "study.yaml"),
                    "--out", str(OUT), "--quiet"], check=True)
    times["scores and report"] = time.time() - t0
    lines = [f"{k}: {v / 60:.1f} min" for k, v in times.items()]
    lines.append(f"total (this invocation): {(time.time() - start) / 60:.1f} min")
    (HERE / "wall_time.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
