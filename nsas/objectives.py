"""Supernet training losses (``--loss``): ce, nsas, nsas-replay, nsas-random, wpl.

Each objective computes its loss for one step and back-propagates it,
architecture by architecture: the current architecture's cross-entropy first,
then each constraint's (scaled) cross-entropy. Gradients accumulate in the
shared weights, so the total gradient is that of

    L = CE(W(a_t); x, y) + beta * mean_{a in A} CE(W(a); x, y)

(docs/METHOD.md §3) while peak memory stays at one single-path pass.

The loop calls ``objective.observe(arch)`` (archive update, Algorithm 1) and
then ``objective.backward(...)`` on the same mini-batch.

``backward(..., hidden=h)`` (darts-rnn with ``carry_state``) starts every
pass of the step from the carried state ``h`` (B, H) and returns the current
architecture's final state, detached, in :attr:`StepLosses.hidden`; the
archive members start from that same state (their columns of it, with
constraint slices), computed by other architectures.

``backward(..., chunks=m)`` splits the batch into m contiguous micro-batches
and averages their gradients; how a batch is divided into micro-batches and
constraint slices, and how the passes run, is :mod:`nsas.passes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn

from nsas import distributed
from nsas.archive import NoveltyArchive
from nsas.config import option
from nsas.errors import CheckpointError, NsasError
from nsas.passes import WHOLE, Batch, Criterion, Term, carried_path_loss, path_loss, run_passes  # noqa: F401
from nsas.registry import Registry
from nsas.spaces.base import Architecture, SearchSpace


@dataclass
class NSASOptions:
    """NSAS options: the archive, the constraints and their variants (and WPL's two), handed whole to a loss.

    Also the NSAS group of :class:`~nsas.search_config.SearchConfig`, which inherits these keys. The
    variants are off by default, which is NSAS as published (docs/METHOD.md).
    """

    archive_size: int = option(8, "NSAS archive size M")
    pool_size: int = option(50, "size of the recent pool C the archive's candidates come from")
    candidates: int | None = option(None, "candidates n drawn from the recent pool per archive update "
                                          "(none: every recent architecture)")
    knn: int = option(10, "k nearest neighbours of the novelty score")
    beta: float = option(1.0, "weight of the mean archive loss")
    replay: int = option(1, "nsas-replay: archive members r replayed per step")
    wpl_strength: float = option(1.0, "wpl: penalty strength lambda")
    wpl_window: int = option(0, "wpl: optimizer steps between refreshes of the anchor weights and Fisher "
                                "estimate (0: one epoch)")
    archive_max_age: int = option(0, "NSAS variant: renew an archive member after this many steps (0: off, "
                                     "Algorithm 1 only)")
    archive_forgetting: int = option(0, "NSAS variant: every this many steps, keep as the archive the M "
                                        "architectures whose loss rose most among the members and `candidates` "
                                        "(default M) recent ones, evaluated on the batch (0: off, Algorithm 1)")
    constraint_every: int = option(1, "NSAS variant: add the archive constraints on every k-th step only")
    constraint_slices: bool = option(False, "NSAS variant: each constraint on its own slice of the batch (about "
                                            "one pass for all of them instead of M)")
    constraint_after: float = option(0.0, "NSAS variant: add the archive constraints (and forgetting rebuilds) "
                                          "only from this share of the epochs on, the low-learning-rate phase "
                                          "(0: from the start, as published)")
    constraint_cap: float = option(0.0, "NSAS variant: a constraint whose loss is above this many times the "
                                        "current architecture's counts as exactly that, its gradient scaled "
                                        "down, never cut (0: off)")
    archive_by: str = option("none", "NSAS variant: none (one archive) or size (one archive per live parameter "
                                     "count: a step's constraints are cells of the current cell's size, the "
                                     "pairs a parameter count cannot order)", choices=("none", "size"))
    normalize_loss: bool = option(False, "NSAS variant: divide the total loss by (1 + beta)")
    shared_batch: bool = option(False, "NSAS variant: the current architecture and the constraints split the "
                                       "batch, one equal slice each (one pass a step in all, like ce)")


@dataclass
class StepLosses:
    """What one step's backward pass measured (floats, for logging)."""

    current: float  # CE of the current architecture
    archive: float | None  # mean CE of the constraint architectures, None without any
    total: float  # the loss whose gradient was accumulated
    passes: int  # single-path forward/backward passes this step cost, in whole-batch equivalents
    hidden: torch.Tensor | None = None  # carried state: the current architecture's final state (B, H), detached


class Objective:
    """Plain cross-entropy of the current architecture (the baselines' loss).

    Every objective computes its per-path loss with ``self.criterion``
    (cross-entropy when None); set it to train with another loss function.
    """

    name: ClassVar[str] = "ce"
    archive: NoveltyArchive | None = None
    criterion: Criterion | None = None

    def observe(self, arch: Architecture) -> None:
        """Record the step's discrete architecture (before the loss)."""

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1,
                 hidden: torch.Tensor | None = None) -> StepLosses:
        """Accumulate the gradient of this step's loss into ``supernet`` (mean over ``chunks`` micro-batches).

        ``hidden``: text only, the state (B, H) every pass starts from (None: zeros).
        """
        (values,), final = run_passes([(path, edge_weights, 1.0, WHOLE)], supernet, batch, chunks, self.criterion,
                                   hidden)
        value = sum(values) / chunks
        return StepLosses(current=value, archive=None, total=value, passes=1, hidden=final)

    def after_step(self, supernet: nn.Module) -> None:
        """Called after the optimizer step (WPL anchors its weights here)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class NSASObjective(Objective):
    """CE(current) + beta * mean CE(archive members), gradients through every term.

    Args:
        archive: the constraint archive (its policy decides nsas vs nsas-random).
        beta: weight of the mean constraint loss.
        replay: None for every member each step (``nsas``); r for the replay
            variant that draws r members per step (``nsas-replay``).
        every: variant: add the constraints only on every ``every``-th step
            (1: every step, as published); the other steps are plain CE.
        slices: variant: each constraint is computed on its own contiguous
            slice of the mini-batch (1/|constraints| of it) instead of the
            whole batch, so the constraints together cost about one pass.
        normalize: variant: scale the total by 1 / (1 + beta), so the step is
            a weighted mean of the terms rather than up to twice CE's step.
        shared: variant: the current architecture and the n constraints split
            the mini-batch into n + 1 contiguous slices, one each, so a step
            costs one pass in all (implies ``slices``). A step without
            constraints gives the current architecture the whole batch.
        forgetting: variant (needs an archive of policy ``"forgetting"``):
            every ``forgetting`` steps, once the archive is full, the members
            and n recent architectures (the archive's ``candidates``, default
            M) not in it are evaluated on the step's batch (forward only),
            and the M whose loss rose most become the archive: a recent
            architecture's rise is its loss now minus its loss on the step
            it was trained, a member's its loss now minus its loss at the
            previous refresh (or when it was trained). Each evaluation is
            counted as a whole pass (an overcount: no backward).
        cap: variant (``constraint_cap``, 0: off): a constraint whose loss is
            above ``cap`` times the current architecture's loss counts as
            exactly that, its gradient scaled down by the same factor (never
            cut off), so no member's loss can dominate a step.
    """

    name = "nsas"

    def __init__(self, archive: NoveltyArchive, *, beta: float = 1.0, replay: int | None = None,
                 every: int = 1, slices: bool = False, normalize: bool = False, shared: bool = False,
                 forgetting: int = 0, cap: float = 0.0) -> None:
        if every < 1:
            raise ValueError("constraint interval must be at least 1")
        if forgetting < 0 or (forgetting > 0) != (archive.policy == "forgetting"):
            raise ValueError("the forgetting variant needs an archive of policy 'forgetting', and vice versa")
        self.archive, self.beta, self.replay = archive, beta, replay
        self.every, self.slices, self.normalize, self.shared = every, slices or shared, normalize, shared
        self.forgetting, self.cap = forgetting, cap
        # variant (constraint_after): the run switches the constraints (and archive refreshes) off before the
        # low-learning-rate phase; derived from the epoch, so not saved in the state
        self.constraints_on = True
        self.steps = 0  # backward calls so far (decides the steps with constraints)
        self.current: Architecture | None = None  # the architecture observed for this step
        # forgetting: each recent architecture's loss on the step it was trained, each member's at the last refresh
        self.trained: dict[str, float] = {}
        self.seen: dict[str, float] = {}

    def observe(self, arch: Architecture) -> None:
        self.archive.update(arch)
        self.current = arch

    def refresh_by_forgetting(self, supernet: nn.Module, batch: Batch, chunks: int = 1) -> int:
        """Rebuild the archive from its members and recent architectures by loss rise; returns the passes.

        Forward only (no gradient), on ``batch`` and from a zero state (text). A loss is the mean over the
        ``chunks`` micro-batches and over the processes, so every process keeps the same archive and m
        processes choose as one process with m micro-batches does.
        """
        archive = self.archive
        members = list(archive.members)
        recent = [a for a in dict.fromkeys(archive.pool) if a not in members and str(a) in self.trained]
        n = min(archive.candidates or archive.capacity, len(recent))
        if n == 0:  # nothing could replace a member
            return 0
        archs = members + archive.rng.sample(recent, n)
        net = distributed.unwrap(supernet)
        dim = 1 if batch[0].dim() == 2 else 0  # text batches are (T, B)
        parts = [distributed.shard(batch, c, chunks, dim=dim) for c in range(chunks)]
        with torch.no_grad():
            now = [sum(path_loss(net, a, part, None, self.criterion).item() for part in parts) / chunks
                   for a in archs]
        now = distributed.mean_floats(now, batch[1].device)
        then = [self.seen.get(str(a), self.trained.get(str(a), loss)) for a, loss in zip(archs, now)]
        # the largest rise first; sorted() is stable, so on ties members stay before candidates
        order = sorted(range(len(archs)), key=lambda i: then[i] - now[i])
        archive.rebuild([archs[i] for i in order])
        self.seen = {str(a): loss for a, loss in zip(archs, now) if a in archive.members}
        return len(archs)

    def constraints(self) -> list[Architecture]:
        """The architectures whose losses regularise this step."""
        members = self.archive.members
        if self.replay is None or self.replay >= len(members):
            return list(members)
        return self.archive.rng.sample(members, self.replay)

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1,
                 hidden: torch.Tensor | None = None) -> StepLosses:
        refresh = 0
        if (self.forgetting and self.constraints_on and self.steps % self.forgetting == 0
                and len(self.archive) == self.archive.capacity):
            refresh = self.refresh_by_forgetting(supernet, batch, chunks)
        constrained = self.constraints_on and self.steps % self.every == 0
        self.steps += 1
        constraints = self.constraints() if constrained else []
        n = len(constraints)
        scale = 1.0 / (1.0 + self.beta) if self.normalize else 1.0
        # d/dW [beta * mean_i CE_i] = sum_i (beta / |A|) dCE_i/dW: one backward per member.
        first = 1 if self.shared and n else 0  # the slice of the first constraint; 0 is the current one's
        terms: list[Term] = [(path, edge_weights, scale, (0, n + 1) if first else WHOLE)]
        terms += [(m, None, scale * self.beta / n, (i + first, n + first) if self.slices else WHOLE)
                  for i, m in enumerate(constraints)]
        per_term, final = run_passes(terms, supernet, batch, chunks, self.criterion, hidden, self.cap)
        values = [sum(v) / chunks for v in per_term]
        cur, members = values[0], values[1:]
        if self.cap:  # what the capped terms contributed (per-micro-batch caps, summarised on the means)
            members = [min(v, self.cap * cur) for v in members]
        mean_archive = sum(members) / len(members) if members else None
        passes = refresh + (1 if self.shared else 1 + (min(n, 1) if self.slices else n))  # whole-batch equivalents
        if self.forgetting and self.current is not None:
            pool = {str(a) for a in self.archive.pool}
            self.trained = {a: v for a, v in self.trained.items() if a in pool}
            # the mean over the processes, so that every process ranks the same rises
            self.trained[str(self.current)] = distributed.mean_floats([cur], batch[1].device)[0]
        return StepLosses(current=cur, archive=mean_archive, passes=passes,
                          total=scale * (cur + self.beta * (mean_archive or 0.0)), hidden=final)

    def state_dict(self) -> dict[str, Any]:
        return {"archive": self.archive.state_dict(), "steps": self.steps,
                "trained": dict(self.trained), "seen": dict(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.archive.load_state_dict(state["archive"])
        self.steps = int(state.get("steps", 0))
        try:
            self.trained = {str(a): float(v) for a, v in state.get("trained", {}).items()}
            self.seen = {str(a): float(v) for a, v in state.get("seen", {}).items()}
        except (AttributeError, TypeError, ValueError) as err:
            raise CheckpointError(f"forgetting state in checkpoint is malformed: {err}") from None


class WPLObjective(Objective):
    """Weight plasticity loss (Benyahia et al. 2019), the prior method (docs/METHOD.md §6).

    L = CE(a_t) + (strength / 2) * sum_i F_i (w_i - w*_i)^2 over the weights
    a_t uses that have an anchor. The anchor weights w* and the diagonal
    Fisher estimate F stay fixed over a window of ``window`` optimizer steps
    and are refreshed at its end: w* becomes the weights after the window's
    last step, F the running mean (per weight, over the window's steps that
    used it) of the squared cross-entropy gradients, divided by the mean of
    all its entries so that F averages 1 and ``strength`` alone sets the
    penalty's scale. Before the first window ends there is no anchor and the
    loss is plain CE. (An anchor refreshed after every step would give
    w = w* at the next step, a zero penalty and plain CE: ``window`` 1 is
    exactly that.)

    Args:
        strength: lambda.
        window: optimizer steps between refreshes (the search passes its
            ``wpl_window``, or the steps of one epoch).
    """

    name = "wpl"

    def __init__(self, *, strength: float = 1.0, window: int = 1) -> None:
        if window < 1:
            raise NsasError(f"the WPL window must be at least 1 step, got {window}")
        self.strength, self.window = strength, window
        self.anchor: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (w*, normalised F)
        self.fisher_sum: dict[str, torch.Tensor] = {}  # name -> sum of squared CE gradients in this window
        self.fisher_count: dict[str, int] = {}  # name -> steps of this window that used the weight
        self.steps = 0  # optimizer steps taken in the current window

    def backward(self, supernet: nn.Module, path: Any, batch: Batch,
                 edge_weights: list[torch.Tensor] | None = None, *, chunks: int = 1,
                 hidden: torch.Tensor | None = None) -> StepLosses:
        # the mean gradient over micro-batches (and processes: identical on every rank)
        (values,), final = run_passes([(path, edge_weights, 1.0, WHOLE)], supernet, batch, chunks, self.criterion,
                                   hidden)
        value = sum(values) / chunks
        # The penalty depends only on the weights, anchors and averaged gradient: every rank computes the same.
        named = dict(distributed.unwrap(supernet).named_parameters())
        used = {n: p for n, p in named.items() if p.grad is not None}
        for n, p in used.items():  # the Fisher estimate of the next anchor: squared CE gradients
            g2 = p.grad.detach().pow(2)
            self.fisher_sum[n] = self.fisher_sum[n] + g2 if n in self.fisher_sum else g2
            self.fisher_count[n] = self.fisher_count.get(n, 0) + 1
        shared = [n for n in used if n in self.anchor]
        penalty = torch.zeros((), device=batch[1].device)
        for n in shared:
            w_star, fisher = self.anchor[n]
            penalty = penalty + (fisher * (used[n] - w_star).pow(2)).sum()
        penalty = 0.5 * self.strength * penalty
        if shared:
            penalty.backward()  # adds strength * F * (w - w*) to the shared weights' gradients
        return StepLosses(current=value, archive=None, total=value + penalty.item(), passes=1, hidden=final)

    def after_step(self, supernet: nn.Module) -> None:
        """Count the step; at the window's end, anchor the current weights with the window's Fisher."""
        self.steps += 1
        if self.steps < self.window:
            return
        named = dict(distributed.unwrap(supernet).named_parameters())
        means = {n: s / self.fisher_count[n] for n, s in self.fisher_sum.items()}
        entries = sum(m.numel() for m in means.values())
        scale = sum(float(m.sum()) for m in means.values()) / entries if entries else 0.0
        if scale > 0.0:
            self.anchor = {n: (named[n].detach().clone(), m / scale) for n, m in means.items()}
        self.fisher_sum, self.fisher_count, self.steps = {}, {}, 0

    def state_dict(self) -> dict[str, Any]:
        return {"anchor": {n: {"w": w, "fisher": f} for n, (w, f) in self.anchor.items()},
                "fisher_sum": dict(self.fisher_sum), "fisher_count": dict(self.fisher_count), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchor = {n: (v["w"], v["fisher"]) for n, v in state["anchor"].items()}
        self.fisher_sum = dict(state["fisher_sum"])
        self.fisher_count = {n: int(c) for n, c in state["fisher_count"].items()}
        self.steps = int(state["steps"])


LOSSES = ("ce", "nsas", "nsas-replay", "nsas-random", "wpl")  # built-in; loss_names() adds registered ones
# name -> factory(space, **options) -> Objective; options: the keyword arguments of build_objective
_REGISTRY: Registry[Callable[..., Objective]] = Registry("loss", {n: __name__ for n in LOSSES})


PassesArg = float | Callable[[Callable[[str], Any]], float] | None
_PASSES: dict[str, float | Callable[[Callable[[str], Any]], float]] = {}


def register_loss(name: str, *, passes: PassesArg = None
                  ) -> Callable[[Callable[..., Objective]], Callable[..., Objective]]:
    """Decorator: register an objective factory ``factory(space, **options) -> Objective``.

    ``options`` are the keyword arguments of :func:`build_objective` after
    ``space`` except ``criterion`` (accept ``**options`` and use the ones you need).
    ``passes``: single-path passes one step of the loss costs once its archive is full
    (the cost measure that equal-compute presets and studies divide by), a number or
    ``passes(get) -> float`` where ``get(key)`` reads a SearchConfig key; default 1.
    """
    if passes is not None:
        _PASSES[name] = passes
    return _REGISTRY.register(name)


def loss_passes(name: str, get: Callable[[str], Any]) -> float:
    """Passes per step a registered loss declared (:func:`register_loss`'s ``passes``; 1 when it declared none)."""
    _REGISTRY.get(name)  # loads the built-in module or the plug-ins that register ``name``
    passes = _PASSES.get(name, 1.0)
    return float(passes(get) if callable(passes) else passes)


def loss_names() -> list[str]:
    """Every loss name: the built-in ones, then registered ones."""
    return _REGISTRY.names()


@register_loss("ce")
def _ce(space: SearchSpace, **_: Any) -> Objective:
    return Objective()


@register_loss("wpl")
def _wpl(space: SearchSpace, *, options: NSASOptions, **_: Any) -> Objective:
    return WPLObjective(strength=options.wpl_strength, window=max(options.wpl_window, 1))


def _nsas_factory(name: str) -> Callable[..., Objective]:
    def factory(space: SearchSpace, *, options: NSASOptions, seed: int = 0, **_: Any) -> Objective:
        o = options
        policy = "forgetting" if o.archive_forgetting else "random" if name == "nsas-random" else "novelty"
        archive = NoveltyArchive(space, capacity=o.archive_size, pool_size=o.pool_size, candidates=o.candidates,
                                 k=o.knn, policy=policy, seed=seed, max_age=o.archive_max_age)
        objective = NSASObjective(archive, beta=o.beta, replay=o.replay if name == "nsas-replay" else None,
                                  every=o.constraint_every, slices=o.constraint_slices, normalize=o.normalize_loss,
                                  shared=o.shared_batch, forgetting=o.archive_forgetting, cap=o.constraint_cap)
        objective.name = name
        return objective
    return factory


for _name in ("nsas", "nsas-replay", "nsas-random"):
    register_loss(_name)(_nsas_factory(_name))


def nsas_options(config: Any) -> NSASOptions:
    """The :class:`NSASOptions` of ``config`` (a SearchConfig, or anything with those attributes)."""
    return NSASOptions(**{f.name: getattr(config, f.name) for f in fields(NSASOptions)})


def build_objective(name: str, space: SearchSpace, options: NSASOptions | None = None, *, seed: int = 0,
                    criterion: Criterion | None = None, **overrides: Any) -> Objective:
    """The objective registered as ``name`` (see :func:`loss_names`).

    Args:
        name: registered loss name.
        space: the search space (the archive measures distances in it).
        options: the NSAS (and WPL) options, handed whole to the loss's factory (default: NSAS as
            published). ``wpl_window`` 0 means one step here; a search makes it one epoch.
        seed: seeds the archive's random choices.
        criterion: per-path loss function (None: cross-entropy).
        **overrides: :class:`NSASOptions` keys that replace ``options``' values (``archive_size=3``).

    A factory is called as ``factory(space, options=options, seed=seed, **keys)``, where ``keys`` are the
    options' fields one by one, for factories written against the keyword form.
    """
    try:
        options = replace(options or NSASOptions(), **overrides)
    except TypeError as err:
        raise NsasError(f"build_objective: {err}") from None
    objective = _REGISTRY.get(name)(space, options=options, seed=seed, **asdict(options))
    if criterion is not None:
        objective.criterion = criterion
    return objective
