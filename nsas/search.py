"""`nsas search`: the library function :func:`search` and the command line around :class:`Search`.

The supernet step is ``nsas/step.py``; the run (loop, probes, checkpoints, selection) is
``nsas/searcher.py``; the settings and presets are ``nsas/search_config.py``; the data halves and
loading a run back are ``nsas/search_data.py``. Names that callers used to import from here
(``Search``, ``SearchConfig``, ``load_search_run``, ``fixed_batches``, ``resolve_device``, ...) are
re-exported.

Run it with no arguments for the quick preset (NAS-Bench-201 space, RandomNAS
with plain cross-entropy, a small supernet, the embedded cifar10-mini data set).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from nsas import distributed
from nsas.config import (add_config_flag, add_config_flags, build_config, config_to_dict,
                         default_repr, print_config, read_yaml, write_yaml)
from nsas.rundir import check_new_run, default_run_dir, resume_dir, resume_values, run_directory
from nsas.spaces import get_space, space_names
from nsas.search_config import DEFAULT_PRESET, PRESETS, SearchConfig, paper_preset, preset_values, quick_preset
from nsas.threads import add_threads_flag, apply_threads
# re-exported: rank, study, the benchmarks and callers import them from here
from nsas.device import resolve_device  # noqa: F401
from nsas.search_data import (SearchData, build_search_data, build_supernet, caller_data,  # noqa: F401
                              cycle_batches, fixed_batches, load_search_run)
from nsas.searcher import Callback, Search  # noqa: F401
from nsas.step import local_micro_batches  # noqa: F401

@dataclass
class SearchResult:
    """What :func:`search` returns (the run directory holds the same, as files)."""

    run_dir: Path
    config: SearchConfig
    selected: list[dict[str, Any]]  # the selected architectures, best first: {"arch", "round", "acc", "loss"}
    #   (select_by fused: also each proxy of fuse_weights and the fused "score")
    archive: list[str]  # the final archive members (empty without an archive)
    steps: int  # supernet steps trained
    passes: int  # single-path forward/backward passes (the cost measure)
    supernet: nn.Module  # the trained supernet (unwrapped)

    @property
    def best(self) -> str:
        """The canonical string of the best selected architecture."""
        return self.selected[0]["arch"]


def search(cfg: SearchConfig | None = None, run_dir: str | Path | None = None, *, resume: bool = False,
           progress: bool = True, force: bool = False, **components: Any) -> SearchResult:
    """Library entry point: run (or resume) a search; ``nsas.search(...)`` is this function.

    Args:
        cfg: the config (default: ``SearchConfig.preset("quick")``).
        run_dir: the run directory (default: a new ``runs/search-...-<time>``).
        resume: continue the run in ``run_dir`` from its checkpoint (pass the same components).
        progress: show a progress bar and console log.
        force: start over in a ``run_dir`` that holds an earlier run's results (deleting them); without it
            such a folder is refused (``nsas.rundir.run_directory``, which also locks it for the run).
        **components: optional replacements for what the config's strings build: ``dataset``,
            ``train_data``, ``val_data``, ``num_classes``, ``supernet``, ``criterion``, ``optimizer``,
            ``scheduler``, ``callbacks`` (see :class:`Search`).

    Returns:
        The selected architectures, the archive, the cost and the trained supernet.
    """
    cfg = cfg if cfg is not None else SearchConfig.preset("quick")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(f"search-{cfg.space}-{cfg.strategy}-{cfg.loss}")
    with run_directory(run_dir, resume=resume, force=force):  # rank 0 locks it for the whole run
        if distributed.is_main():
            write_yaml(run_dir / "config.yaml", config_to_dict(cfg))
        distributed.barrier()
        run = Search(cfg, run_dir, progress=progress, **components)
        selected = run.run(resume=resume)
    return SearchResult(run_dir=run_dir, config=cfg, selected=selected,
                        archive=[str(a) for archive in run.archives() for a in archive.members], steps=run.global_step,
                        passes=run.passes, supernet=run.supernet)


# ---- command line ----------------------------------------------------------
RESUME_KEYS = ("device", "consistency_every", "tensorboard")  # keys --resume lets a user change


def _default_text(key: str, default: Any) -> str:
    """The default a flag's help shows: the dataclass default, or the preset's when a preset sets the key."""
    if any(key in PRESETS[name]("nb201", "random") for name in PRESETS) or any(
            key in preset(space, "random") for preset in (quick_preset, paper_preset) for space in space_names()):
        text = f"default: from --preset; quick on nb201: {default_repr(quick_preset('nb201', 'random').get(key, default))}"
        if key == "epochs":  # the quick preset keeps its passes: a costlier step gets fewer epochs
            text += f", with --loss nsas {quick_preset('nb201', 'random', {'loss': 'nsas'})['epochs']}"
        return text
    return f"default: {default_repr(default)}"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `nsas search`: one per SearchConfig key, plus the preset, run directory and resume."""
    parser.description = (
        "Train a weight-sharing supernet and select architectures. Settings: the preset (--preset; default "
        "quick), then --config FILE.yaml, then flags. The quick preset is the paper's settings for the chosen "
        "--space and --strategy with a small supernet, few epochs (nb201 with RandomNAS: "
        f"{quick_preset('nb201', 'random')['epochs']} epochs of ce, fewer for a loss whose step costs more "
        "passes) and a short selection (image spaces on the "
        "embedded cifar10-mini data set); --preset paper is the paper's settings (e.g. 50 epochs, 240 for GDAS "
        "on the DARTS spaces); --preset nb201-cpu is the ranking benchmark's nb201 search on CIFAR-10, sized for "
        "a 2-core CPU. Choosing --space or --dataset never changes the preset. --print-config shows "
        "the resolved settings.")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help=f"base settings, overridden by --config and flags (default: {DEFAULT_PRESET})")
    add_config_flag(parser)
    add_config_flags(parser, SearchConfig, default_text=_default_text)
    parser.add_argument("--out", default=None, help="run directory (default runs/search-<space>-...-<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (config from its config.yaml)")
    parser.add_argument("--force", action="store_true",
                        help="start a new run in an --out that holds an earlier run's results, deleting them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or console log")
    add_threads_flag(parser)


def resolve(args: argparse.Namespace) -> SearchConfig:
    """Config from preset < YAML < flags (the preset: ``--preset``, else quick)."""
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    yaml_values = read_yaml(args.config) if args.config else {}
    chosen = {**yaml_values, **flags}
    values = {**preset_values(getattr(args, "preset", None) or DEFAULT_PRESET, chosen), **chosen}
    return build_config(SearchConfig, values, source=f"config file {args.config}" if args.config else "search")


def _resume_config(args: argparse.Namespace, run_dir: Path) -> SearchConfig:
    """The recorded config of the run to continue (only --device, --consistency-every and --tensorboard may change)."""
    values = resume_values(args, run_dir, {f.name for f in dataclasses.fields(SearchConfig)}, RESUME_KEYS,
                           blockers=("config", "preset"))
    return build_config(SearchConfig, values, source=f"{run_dir / 'config.yaml'}")


def run(args: argparse.Namespace) -> int:
    """`nsas search`."""
    apply_threads(getattr(args, "threads", None))
    if args.resume:
        run_dir = resume_dir(args.out, args.force)
        cfg = _resume_config(args, run_dir)
        if args.print_config:
            print_config(cfg)
            return 0
        how = "resumed"
    else:
        cfg = resolve(args)
        if args.print_config:
            print_config(cfg)
            return 0
        run_dir = Path(args.out) if args.out else default_run_dir(f"search-{cfg.space}-{cfg.strategy}-{cfg.loss}")
        run_dir = Path(distributed.broadcast_object(str(run_dir)))  # the ranks' clocks may differ
        check_new_run(run_dir, force=args.force)  # before the work; checked again under the run's lock
        how = f"preset {args.preset or DEFAULT_PRESET}"
    print(f"nsas search: {cfg.space} / {cfg.strategy} / {cfg.loss} on {cfg.dataset}, "
          f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)} ({how}) -> {run_dir}")
    selected = search(cfg, run_dir, resume=args.resume, progress=not args.quiet, force=args.force).selected
    if get_space(cfg.space).kind == "text":
        print("selected architectures, best first (validation loss with inherited weights):")
        for row in selected:
            print(f"  {row['loss']:8.3f}  {row['arch']}")
    elif all("score" in row for row in selected):  # select_by fused
        print(f"selected architectures, best first by the fused score ({cfg.fuse_method}: {cfg.fuse_weights}; "
              "validation accuracy and loss with inherited weights):")
        for row in selected:
            print(f"  score {row['score']:+.3f}  {row['acc']:6.2f}%  loss {row['loss']:.4f}  {row['arch']}")
    else:
        print(f"selected architectures, best first by {'loss' if cfg.rank_by == 'loss' else 'accuracy'} "
              "(validation accuracy and loss with inherited weights):")
        for row in selected:
            print(f"  {row['acc']:7.2f}%  loss {row['loss']:.4f}  {row['arch']}")
    print(f"run directory: {run_dir}")
    return 0


import nsas as _nsas  # noqa: E402

_nsas._make_callable(__name__)  # nsas.search(...) calls search() above
