"""Search strategies (``--strategy``): how each step's architecture is chosen.

- ``random``: RandomNAS (Li & Talwalkar 2019): uniform sampling of valid
  architectures; selection by random search on the trained supernet.
- ``gdas``: GDAS (Dong & Yang 2019): architecture logits alpha; each step
  draws a hard Gumbel-max sample per row (only the chosen op runs), with a
  straight-through gradient through the Gumbel-softmax; alpha trains on the
  validation half with Adam, alternating with the weight step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from nsas import distributed
from nsas.checkpoint import as_tuple
from nsas.config import option
from nsas.errors import NsasError
from nsas.registry import Registry
from nsas.spaces.base import Architecture, SearchSpace


@dataclass
class GDASOptions:
    """GDAS options: the Gumbel-softmax temperature schedule and the architecture logits' optimizer."""

    tau_max: float = option(10.0, "gdas: initial Gumbel-softmax temperature (annealed linearly)")
    tau_min: float = option(0.1, "gdas: final Gumbel-softmax temperature")
    arch_lr: float = option(3e-4, "gdas: Adam learning rate of the architecture logits")
    arch_weight_decay: float = option(1e-3, "gdas: weight decay of the architecture logits")


@dataclass
class Sample:
    """One step's choice: the path the supernet computes and its discrete architecture."""

    path: Any  # what supernet(x, path) takes (an architecture, or a GDAS path)
    arch: Architecture  # the discrete architecture (enters the recent pool and archive)
    edge_weights: list[torch.Tensor] | None = None  # GDAS straight-through multipliers


class RandomStrategy:
    """RandomNAS: a uniformly random valid architecture each step.

    ``sampling="functions"`` draws uniformly over the space's distinct
    supernet functions instead (:meth:`SearchSpace.functions`; nb201: 7,548
    of them for 15,625 strings). Uniform sampling of strings draws simple
    functions far more often than their share (every cell whose edges into
    a dead node differ computes the same thing), so shortcut- and pool-heavy
    paths get more of the training; drawing each function equally often
    gives the convolution weights more steps.
    """

    name: ClassVar[str] = "random"
    SAMPLING: ClassVar[tuple[str, ...]] = ("uniform", "functions")

    def __init__(self, space: SearchSpace, *, seed: int = 0, sampling: str = "uniform") -> None:
        if sampling not in self.SAMPLING:
            raise NsasError(f"unknown sampling {sampling!r}; choose one of {', '.join(self.SAMPLING)}")
        self.space = space
        self.rng = random.Random(seed)
        self.sampling = sampling
        self.pool = space.functions() if sampling == "functions" else None

    def sample(self) -> Sample:
        arch = self.space.sample(self.rng) if self.pool is None else self.rng.choice(self.pool)
        return Sample(path=arch, arch=arch)

    def set_progress(self, epoch: int, epochs: int) -> None:
        """Called at the start of every epoch (GDAS anneals its temperature)."""

    def arch_step(self, supernet: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *,
                  chunks: int = 1) -> dict[str, float]:
        """Architecture-parameter update on a validation batch (none for RandomNAS)."""
        return {}

    def parameters(self) -> list[nn.Parameter]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate(as_tuple(state["rng"]))


class GDASStrategy:
    """GDAS: Gumbel-max hard sampling with straight-through gradients.

    Args:
        space: the search space (defines the alpha matrices and their decoding).
        tau_max, tau_min: the temperature anneals linearly from tau_max to tau_min
            over the epochs.
        lr, betas, weight_decay: Adam on alpha (GDAS's settings by default).
        seed: seeds the Gumbel noise generator.
        device: where alpha lives.
    """

    name: ClassVar[str] = "gdas"

    def __init__(self, space: SearchSpace, *, tau_max: float = 10.0, tau_min: float = 0.1,
                 lr: float = 3e-4, betas: tuple[float, float] = (0.5, 0.999), weight_decay: float = 1e-3,
                 seed: int = 0, device: str | torch.device = "cpu", **_: Any) -> None:
        self.space = space
        self.alphas = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)).to(device))
            for i, shape in enumerate(space.gdas_alpha_shapes()))
        self.optimizer = torch.optim.Adam(self.alphas.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        self.tau_max, self.tau_min, self.tau = tau_max, tau_min, tau_max
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def set_progress(self, epoch: int, epochs: int) -> None:
        frac = epoch / max(1, epochs - 1)
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * frac

    def gumbel(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """One hard sample per row: (choices, detached soft weights, straight-through multipliers).

        The multiplier of row r is ``1 - p_r.detach() + p_r`` where p_r is the
        Gumbel-softmax weight of the chosen column: its value is 1 (the forward
        pass computes the chosen op unscaled) and its gradient is dp_r/dalpha.
        """
        choices, probs, weights = [], [], []
        for alpha in self.alphas:
            u = torch.rand(alpha.shape, generator=self.generator, device=alpha.device).clamp(1e-10, 1 - 1e-7)
            g = -torch.log(-torch.log(u))  # Gumbel(0, 1) noise
            soft = torch.softmax((alpha.log_softmax(-1) + g) / self.tau, dim=-1)  # (rows, cols)
            index = soft.argmax(-1)  # (rows,)
            p = soft.gather(1, index[:, None]).squeeze(1)
            choices.append(index)
            probs.append(soft.detach())
            weights.append(1.0 - p.detach() + p)
        return choices, probs, weights

    def sample(self) -> Sample:
        """The weight step's sample; multipliers are dropped (alpha learns on the validation step)."""
        with torch.no_grad():
            choices, probs, _ = self.gumbel()
        path, arch = self.space.gdas_decode(choices, probs)
        return Sample(path=path, arch=arch)

    def arch_step(self, supernet: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *,
                  chunks: int = 1) -> dict[str, float]:
        """One Adam step on alpha from a fresh sample's CE on a validation batch.

        ``batch`` is this process's part of the global batch; the loss is the
        mean over ``chunks`` micro-batches of it, and under data parallelism
        the alpha gradients are averaged over the processes before the step
        (every rank draws the same sample, so alpha stays identical).
        """
        from nsas.passes import path_loss

        supernet = distributed.unwrap(supernet)  # alpha is not part of the DDP module: reduced by hand below
        choices, probs, weights = self.gumbel()
        path, _ = self.space.gdas_decode(choices, probs)
        self.optimizer.zero_grad(set_to_none=True)
        for p in supernet.parameters():  # the weights are not trained on the validation half
            p.requires_grad_(False)
        try:
            parts = [distributed.shard(batch, c, chunks, dim=1 if batch[0].dim() == 2 else 0) for c in range(chunks)]
            loss = sum(path_loss(supernet, path, part, edge_weights=weights) for part in parts) / chunks
            if loss.requires_grad:
                loss.backward()
            else:  # no chosen op reaches the output (nb201: an all-`none` cell): alpha's gradient is zero
                for alpha in self.alphas:
                    alpha.grad = torch.zeros_like(alpha)
        finally:
            for p in supernet.parameters():
                p.requires_grad_(True)
        grads = [a.grad for a in self.alphas if a.grad is not None]
        distributed.all_reduce_mean(grads)
        self.optimizer.step()
        (value,) = distributed.mean_floats([loss.item()])
        return {"arch_loss": value, "tau": self.tau}

    def final(self) -> Architecture:
        """The argmax architecture of the learned alpha."""
        return self.space.gdas_final([a.detach() for a in self.alphas])

    def parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {
            "alphas": [a.detach().clone() for a in self.alphas],
            "optimizer": self.optimizer.state_dict(),
            "tau": self.tau,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"], strict=True):
                a.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.tau = float(state["tau"])
        self.generator.set_state(state["generator"])


STRATEGIES = ("random", "gdas")  # the built-in strategies; strategy_names() adds registered ones
class Strategy(Protocol):
    """What a search needs of a strategy (:class:`RandomStrategy` and :class:`GDASStrategy` are two).

    A ``final() -> Architecture`` method, when a strategy has one, picks the search's result instead of
    random search on the trained supernet (GDAS: the argmax of its logits).
    """

    def sample(self) -> Sample:
        """This step's path and discrete architecture."""
        ...

    def set_progress(self, epoch: int, epochs: int) -> None:
        """Called at the start of every epoch."""
        ...

    def arch_step(self, supernet: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *,
                  chunks: int = 1) -> dict[str, float]:
        """Update the strategy's own parameters on a validation batch; values to log (empty: none)."""
        ...

    def parameters(self) -> list[nn.Parameter]:
        """The strategy's trainable parameters (empty: no validation-half step)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# name -> factory(space, *, seed, device, **options) -> strategy
_REGISTRY: Registry[Callable[..., Strategy]] = Registry("strategy", {n: __name__ for n in STRATEGIES})


def register_strategy(name: str) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
    """Decorator: register a strategy factory ``factory(space, *, seed, device, **options)``.

    A search passes every strategy the same options (``sampling``, and GDAS's ``tau_max``,
    ``tau_min``, ``lr``, ``weight_decay`` from ``arch_lr``/``arch_weight_decay``); take the ones you
    use and accept the rest with ``**_``.

    The factory returns an object with ``sample() -> Sample``,
    ``set_progress(epoch, epochs)``, ``arch_step(supernet, batch, chunks=)``,
    ``parameters()``, ``state_dict()`` and ``load_state_dict(state)`` (see
    :class:`RandomStrategy`); a ``final()`` method, when present, picks the
    final architecture instead of random search. A strategy class whose
    ``__init__`` has that signature can be decorated directly.
    """
    return _REGISTRY.register(name)


def strategy_names() -> list[str]:
    """Every strategy name: the built-in ones, then registered ones."""
    return _REGISTRY.names()


register_strategy("random")(lambda space, *, seed=0, device="cpu", sampling="uniform", **_:
                            RandomStrategy(space, seed=seed, sampling=sampling))
register_strategy("gdas")(GDASStrategy)


def build_strategy(name: str, space: SearchSpace, *, seed: int = 0, device: str | torch.device = "cpu",
                   **options: Any) -> Strategy:
    """The strategy registered as ``name`` (see :func:`strategy_names`).

    Args:
        name: registered strategy name.
        space: the search space it samples.
        seed: seeds its random choices.
        device: where its parameters (if any) live.
        **options: strategy-specific settings (random: sampling; GDAS: tau_max, tau_min, lr,
            weight_decay); a strategy ignores the ones it does not take.
    """
    return _REGISTRY.get(name)(space, seed=seed, device=device, **options)
