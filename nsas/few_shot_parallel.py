"""Few-shot sub-supernets trained in parallel processes (``few_shot_workers``).

Once a few-shot supernet is split (``nsas.few_shot``), a step touches one sub-supernet only: the one its
architecture routes to, the optimizer's state of that copy's weights and, with ``few_shot_archive:
split``, that copy's own objective and archive. Two steps on different copies share nothing, so an
epoch's steps can be shared out by copy among processes and each copy still sees exactly its sequential
run's steps, in the same order. That is what :func:`train_split_epoch` does:

1. this process draws the epoch's architectures from the strategy (the same draws, in the same order, as
   the sequential loop) and counts the steps of each copy;
2. it gives every copy to one of ``few_shot_workers`` processes (itself and ``few_shot_workers - 1``
   worker processes), the copies with most steps first, each to the least loaded process;
3. it sends every worker the state of the copies it owns for the epoch (weights, optimizer state,
   objective), then reads the epoch's batches in order: a step of one of its own copies it runs itself,
   the others it sends, with their batch, to the copy's worker;
4. at the end of the epoch every worker returns its copies' state and its step records; the run writes
   the records in step order, then probes, logs and checkpoints as after a sequential epoch.

So the checkpoint, resume and everything after the epoch are the sequential run's, and with one CPU
thread per process the weights, archives and selection are bit-identical to the sequential run at one
thread (``tests/test_few_shot_parallel.py``; at other thread counts they agree up to floating-point
summation order, as any change of thread count does). The warm-up (before the split) is one supernet and
runs in this process alone. Messages between the processes are pickled with the standard pickler (tensors
by value, no shared memory); they never touch a file, and checkpoints are still written and read only by
``nsas.checkpoint``.

With 2 processes and 5 copies the best split is 3 : 2 of the steps, so the split phase can run at most
about 1.7x faster than one process; ``bench/few_shot_parallel.py`` measures it side by side.
"""

from __future__ import annotations

import heapq
import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from nsas.errors import NsasError, TrainingError
from nsas.objectives import Objective
from nsas.step import StepRun, supernet_step

if TYPE_CHECKING:  # type-only
    from nsas.spaces.base import Architecture

_POLL_S = 1.0  # how often a blocked send or receive checks that the other process is still alive


class SplitRun(StepRun, Protocol):
    """What the parallel split reads of a search run beyond a step's needs: :class:`nsas.searcher.Search` is one."""

    objective: Any
    split_objectives: list[Any]
    criterion: Any
    data: Any  # SearchData: ``train.epoch(epoch, start=step)`` gives the epoch's batches
    steps_per_epoch: int
    elapsed: float
    metrics: Any  # the run's metrics writer (``write(record)``)
    callbacks: list[Any]


def check_parallel(run: SplitRun) -> None:
    """Raise a clear error if ``run`` cannot train its splits in ``few_shot_workers`` processes.

    ``SearchConfig`` refuses it without ``few_shot_edge``; these need the built run: the copies must not
    share an archive or other objective state (a shared archive, WPL's anchors), and the run must be a
    one-machine CPU run with a one-group optimizer.
    """
    if run.world > 1:
        raise NsasError("few_shot_workers > 1 trains the sub-supernets in processes of one machine; under "
                        "torchrun (data parallel) use few_shot_workers 1")
    if run.device.type != "cpu":
        raise NsasError(f"few_shot_workers > 1 trains the sub-supernets in CPU processes; on {run.device} use "
                        "few_shot_workers 1")
    if len(run.optimizer.param_groups) != 1:
        raise NsasError("few_shot_workers > 1 rebuilds the optimizer in every worker from one parameter group; "
                        f"this optimizer has {len(run.optimizer.param_groups)}")
    objective = run.objective
    if objective.archive is not None and not run.split_objectives:
        raise NsasError("few_shot_workers > 1 needs one archive per sub-supernet (few_shot_archive split); a "
                        "shared archive sends its members' losses to every sub-supernet")
    if objective.archive is None and (objective.state_dict() or type(objective).after_step is not Objective.after_step):
        raise NsasError(f"few_shot_workers > 1 needs each sub-supernet's training to be independent; the "
                        f"{run.cfg.loss} loss keeps state over the whole supernet (use few_shot_workers 1)")


def assign(counts: Sequence[int], processes: int) -> list[int]:
    """The process (0 = this one) of every copy: most steps first, each to the least loaded process.

    Deterministic: ties go to the lower copy and the lower process.
    """
    owners = [0] * len(counts)
    loads = [(0, p) for p in range(processes)]
    heapq.heapify(loads)
    for k in sorted(range(len(counts)), key=lambda k: (-counts[k], k)):
        load, p = heapq.heappop(loads)
        owners[k] = p
        heapq.heappush(loads, (load + counts[k], p))
    return owners


class SplitWorkers:
    """The worker processes of one run: checked and packed when made, started on first use, ended by :meth:`close`.

    Raises:
        NsasError: the run cannot train in parallel (:func:`check_parallel`), or its supernet, criterion or
            objective cannot be pickled for the workers.
    """

    def __init__(self, run: SplitRun) -> None:
        check_parallel(run)
        self.count = run.cfg.few_shot_workers - 1  # processes besides this one
        self.threads = max(1, torch.get_num_threads() // run.cfg.few_shot_workers)
        try:  # the structure only: every epoch sends the owned copies' weights and state
            self.setup = _dumps({"cfg": run.cfg, "supernet": run.supernet, "optimizer": type(run.optimizer),
                                 "defaults": dict(run.optimizer.defaults), "objective": run.objective,
                                 "split_objectives": run.split_objectives, "chunks": run.chunks,
                                 "checkpoint": str(run.checkpoint_path), "threads": self.threads})
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            raise NsasError(f"few_shot_workers > 1 sends the supernet and objective (with its criterion) to "
                            f"worker processes, and one of them cannot be pickled ({err}); define them at "
                            "module level, or use few_shot_workers 1") from None
        self.procs: list[Any] = []
        self.inboxes: list[Any] = []
        self.outbox: Any = None

    def start(self) -> None:
        if self.procs:
            return
        ctx = multiprocessing.get_context("spawn")  # no forked torch thread pools
        self.outbox = ctx.Queue()
        for w in range(self.count):
            inbox = ctx.Queue(maxsize=64)  # bounds the batches waiting for a slower worker
            proc = ctx.Process(target=_worker_main, args=(self.setup, inbox, self.outbox), daemon=True,
                               name=f"nsas-few-shot-{w + 1}")
            proc.start()
            self.procs.append(proc)
            self.inboxes.append(inbox)

    def send(self, worker: int, message: Any) -> None:
        """Put ``message`` into worker ``worker``'s inbox (1-based), waiting while the inbox is full."""
        data, inbox, proc = _dumps(message), self.inboxes[worker - 1], self.procs[worker - 1]
        while True:
            try:
                inbox.put(data, timeout=_POLL_S)
                return
            except queue.Full:
                self._check_alive(proc)

    def receive(self) -> Any:
        """The next message of any worker (a worker that died is an error, not a hang)."""
        while True:
            try:
                return pickle.loads(self.outbox.get(timeout=_POLL_S))
            except queue.Empty:
                for proc in self.procs:
                    self._check_alive(proc)

    def _check_alive(self, proc: Any) -> None:
        """Raise if ``proc`` has ended, with the error it reported when there is one."""
        if proc.is_alive():
            return
        reason = f"exit code {proc.exitcode}"
        try:
            reply = pickle.loads(self.outbox.get(timeout=_POLL_S))
            if reply[0] == "error":
                reason = reply[1]
        except queue.Empty:
            pass
        raise NsasError(f"few-shot worker {proc.name} ended before the epoch did ({reason}); the run stopped "
                        "and its last checkpoint is intact")

    def close(self) -> None:
        for inbox, proc in zip(self.inboxes, self.procs, strict=True):
            if proc.is_alive():
                try:
                    inbox.put(_dumps(("stop",)), timeout=_POLL_S)
                except queue.Full:
                    pass
        for proc, inbox in zip(self.procs, self.inboxes, strict=True):
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            inbox.cancel_join_thread()  # what a dead worker did not read must not hold this process at exit
        self.procs, self.inboxes, self.outbox = [], [], None


def train_split_epoch(run: SplitRun, workers: SplitWorkers, bar: Any) -> None:
    """Run the rest of ``run``'s current epoch (a split supernet) in ``workers`` and this process.

    Leaves ``run`` as the sequential loop leaves it (``step``, ``global_step``, ``passes``, ``elapsed``, the
    weights, optimizer state and objectives; every step's metrics record written and passed to the
    callbacks, in step order, after the last step), ready for ``Search.end_epoch``.
    """
    cfg, supernet = run.cfg, run.supernet
    workers.start()
    t0 = time.perf_counter()
    first, start_step, left = run.step, run.global_step, run.steps_per_epoch - run.step
    passes = run.passes  # the local steps advance run.passes; the epoch's total is summed below
    samples = [run.strategy.sample() for _ in range(left)]  # the sequential loop's draws, in its order
    routes = [supernet.route(s.arch) for s in samples]
    owners = assign([routes.count(k) for k in range(len(supernet.subnets))], workers.count + 1)
    group = {k: v for k, v in run.optimizer.param_groups[0].items() if k != "params"}
    for w in range(1, workers.count + 1):
        workers.send(w, ("epoch", group, {k: state_of(run, k) for k, p in enumerate(owners) if p == w}))
    threads = torch.get_num_threads()
    torch.set_num_threads(workers.threads)
    records: list[tuple[int, dict[str, Any], int]] = []  # (step in epoch, record, passes of the step)
    images = 0
    try:
        batches = run.data.train.epoch(run.epoch, start=first)
        for i, (sample, route, batch) in enumerate(zip(samples, routes, batches)):
            run.step, run.global_step = first + i, start_step + i
            images += batch[1].numel()
            if owners[route] == 0:
                before = run.passes
                records.append((i, supernet_step(run, batch, None, sample=sample), run.passes - before))
            else:  # clone: a batch may view a larger tensor, which pickling would copy whole
                workers.send(owners[route], ("step", i, run.step, run.global_step, run.epoch, sample,
                                             tuple(t.clone() for t in batch)))
            bar.update(1)
            bar.set_description(f"epoch {run.epoch + 1}/{cfg.epochs}")
        failures = []
        for w in range(1, workers.count + 1):
            workers.send(w, ("end",))
        for _ in range(workers.count):
            reply = workers.receive()
            if reply[0] == "error":
                failures.append(reply[1])
                continue
            _, states, their_records = reply
            records += their_records
            for k, state in states.items():
                load_state(run, k, state)
        if failures:  # a failed worker's error (a NaN loss stays a TrainingError)
            kind, _, message = min(failures).partition(": ")
            raise TrainingError(message) if kind == "TrainingError" else NsasError(
                f"a few-shot worker failed: {kind}: {message}")
    finally:
        torch.set_num_threads(threads)
    if len(records) != left:
        raise NsasError(f"few-shot workers returned {len(records)} of the epoch's {left} steps")
    records.sort(key=lambda r: r[0])
    run.step, run.global_step = first + left, start_step + left
    seconds = time.perf_counter() - t0
    run.elapsed += seconds
    unit = "tokens_per_s" if run.space.kind == "text" else "images_per_s"
    run.passes = passes
    for _, record, cost in records:  # each step's passes, summed in step order as the sequential loop does
        run.passes += cost
        record["passes"] = run.passes
        if record["step"] % cfg.log_every == 0:
            record[unit] = images / max(seconds, 1e-9)  # the epoch's mean throughput over all processes
            run.metrics.write(record)
        for callback in run.callbacks:
            callback.on_step_end(run, record)
    if records:
        bar.set_postfix(loss=f"{records[-1][1]['loss']:.3f}")


def _objective_of(run: Any, k: int) -> Any:
    """Copy ``k``'s objective: its own (split archives), else the run's one."""
    return run.split_objectives[k] if run.split_objectives else run.objective


def state_of(run: Any, k: int) -> dict[str, Any]:
    """Copy ``k``'s weights, optimizer state and objective state in ``run`` (the search or a worker's copy)."""
    sub = run.supernet.subnets[k]
    objective = _objective_of(run, k)
    return {"weights": sub.state_dict(),
            "optimizer": [run.optimizer.state.get(p) for p in sub.parameters()],
            "objective": objective.state_dict() if run.split_objectives else None,
            "constraints_on": getattr(objective, "constraints_on", None)}


def load_state(run: Any, k: int, state: dict[str, Any]) -> None:
    """Load a :func:`state_of` copy ``k`` into ``run`` (the search or a worker's copy)."""
    sub = run.supernet.subnets[k]
    sub.load_state_dict(state["weights"])  # copies into the live tensors, which the optimizer holds
    for p, opt_state in zip(sub.parameters(), state["optimizer"], strict=True):
        if opt_state is None:
            run.optimizer.state.pop(p, None)
        else:
            run.optimizer.state[p] = opt_state
    objective = _objective_of(run, k)
    if state["objective"] is not None:
        objective.load_state_dict(state["objective"])
    if state["constraints_on"] is not None:
        objective.constraints_on = state["constraints_on"]


class _WorkerRun:
    """What :func:`nsas.step.supernet_step` reads in a worker: its copy of the split supernet and objectives."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.cfg = setup["cfg"]
        self.supernet: nn.Module = setup["supernet"]
        self.model = self.supernet
        self.space = self.supernet.space
        self.params = list(self.supernet.parameters())
        self.optimizer = setup["optimizer"](self.params, **setup["defaults"])
        self.objective, self.split_objectives = setup["objective"], setup["split_objectives"]
        self.supernet.is_split.fill_(True)  # a worker only runs split epochs (it was packed before the split)
        self.strategy: Any = None  # every step's sample comes from the main process
        self.device = torch.device("cpu")
        self.rank, self.world, self.chunks = 0, 1, setup["chunks"]
        self.carry, self.hidden = False, None
        self.passes = self.epoch = self.step = self.global_step = 0
        self.checkpoint_path = Path(setup["checkpoint"])

    def objective_for(self, arch: Architecture) -> Any:
        return _objective_of(self, self.supernet.route(arch))


def _worker_main(setup_bytes: bytes, inbox: Any, outbox: Any) -> None:
    """A worker process: load the epoch's copies, run their steps, return their state at the epoch's end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the main process, which ends the workers
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    try:
        setup = pickle.loads(setup_bytes)
        torch.set_num_threads(setup["threads"])
        run = _WorkerRun(setup)
    except Exception as err:  # e.g. a plug-in this process cannot import; the main process reports it
        outbox.put(_dumps(("error", f"{type(err).__name__}: {err}")))
        return
    owned: list[int] = []
    records: list[tuple[int, dict[str, Any], int]] = []
    failure: str | None = None
    while True:
        message = pickle.loads(inbox.get())
        kind = message[0]
        if kind == "stop":
            return
        if kind == "epoch":
            _, group, states = message
            run.optimizer.param_groups[0].update(group)
            owned, records, failure = sorted(states), [], None
            for k, state in states.items():
                load_state(run, k, state)
        elif kind == "step" and failure is None:  # after a failure the epoch's other steps are not run
            _, i, run.step, run.global_step, run.epoch, sample, batch = message
            try:
                before = run.passes
                record = supernet_step(run, batch, None, sample=sample)
                records.append((i, record, run.passes - before))
            except Exception as err:  # reported to the main process, which raises it
                failure = f"{type(err).__name__}: {err}"
                if not isinstance(err, NsasError):
                    failure += "\n" + traceback.format_exc(limit=4)
        elif kind == "end":
            reply = ("error", failure) if failure else ("done", {k: state_of(run, k) for k in owned}, records)
            outbox.put(_dumps(reply))


def _exit_with_parent() -> None:
    """End this worker as soon as the main process ends, however it ended (even killed mid-message)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
