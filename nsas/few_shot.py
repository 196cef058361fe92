"""Few-shot supernets: one supernet split on one edge into a sub-supernet per operation.

A one-shot supernet shares every weight among all architectures; few-shot NAS (Zhao et al., 2021)
lowers the sharing by splitting the supernet on one edge (a choice point) into one copy per operation
on that edge, each copy trained only on the architectures that choose its operation. In nsas the
split happens after a shared warm-up (``few_shot_warmup``, a share of the epochs): the copies start
from the warm-up weights (and the optimizer's momentum), then every step trains the copy the sampled
architecture belongs to. Scoring (probes, selection, ``nsas rank``) sends every architecture to its
own copy, so the whole scorer works unchanged on a :class:`FewShotSupernet`.

The copies exist from the start (sub-supernet 0 takes every path during the warm-up; the others get
no gradient, so SGD leaves them untouched), so the module, its checkpoint and the optimizer keep one
shape for the whole run and a run resumes exactly before or after the split.

Routing goes by the space's representative of an architecture (``SearchSpace.same_function``), so
architectures that compute one supernet function share one copy and one score, as the scorer's
deduplication assumes. With the NSAS losses, ``few_shot_archive: split`` keeps one archive per copy
(members constrain the weights they were trained in); ``shared`` keeps one archive whose members'
losses each go to their own copy.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from nsas.spaces.base import Architecture, SearchSpace


class FewShotSupernet(nn.Module):
    """``len(space.split_options(edge))`` copies of ``supernet``; ``forward(x, path)`` runs ``path``'s copy.

    Args:
        supernet: the one-shot supernet to copy (its weights are every copy's starting point).
        space: the search space (``split_options``, ``split_of``, ``same_function``).
        edge: the split point (nb201: edge 0-5; a choice space: its choice point).
    """

    def __init__(self, supernet: nn.Module, space: SearchSpace, edge: int) -> None:
        super().__init__()
        self.space, self.edge = space, edge
        self.options = space.split_options(edge)
        self.subnets = nn.ModuleList([supernet] + [copy.deepcopy(supernet) for _ in self.options[1:]])
        self.register_buffer("is_split", torch.zeros((), dtype=torch.bool))  # saved with the weights
        self._routes: dict[Any, int] = {}

    def route(self, path: Architecture) -> int:
        """The copy that computes ``path``: 0 before the split, else its representative's op on the edge."""
        if not bool(self.is_split):
            return 0
        index = self._routes.get(path)
        if index is None:
            index = self._routes[path] = self.space.split_of(self.space.same_function(path), self.edge)
        return index

    def subnet_for(self, path: Architecture) -> nn.Module:
        """The sub-supernet that computes ``path`` (BatchNorm recalibration touches only it)."""
        return self.subnets[self.route(path)]

    def forward(self, x: torch.Tensor, path: Architecture, edge_weights: Any = None, **kwargs: Any) -> Any:
        if edge_weights is not None:
            kwargs["edge_weights"] = edge_weights
        return self.subnets[self.route(path)](x, path, **kwargs)

    def split(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Copy sub-supernet 0 (the warm-up weights) into every other copy, and its optimizer state too."""
        first = self.subnets[0]
        with torch.no_grad():
            for sub in self.subnets[1:]:
                for target, source in zip(sub.state_dict().values(), first.state_dict().values(), strict=True):
                    target.copy_(source)
                if optimizer is not None:
                    for target, source in zip(sub.parameters(), first.parameters(), strict=True):
                        if source in optimizer.state:
                            optimizer.state[target] = {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v)
                                                       for k, v in optimizer.state[source].items()}
        self.is_split.fill_(True)
        self._routes.clear()
