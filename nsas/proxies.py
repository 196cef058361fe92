"""Zero-cost proxies: training-free scores of an architecture's stand-alone network.

    from nsas.proxies import score_proxies, proxy_batch
    rows = score_proxies(get_space("nb201"), archs, "all", proxy_batch("cifar10-mini", 64),
                         options={"channels": 8, "cells": 1})
    rows[0]        # {"arch": "...", "params": ..., "flops": ..., "synflow": ..., ...}
    rows.seconds   # mean seconds per distinct function, per proxy

Every proxy is **higher is better** and is computed on the stand-alone
network (``space.build_network(arch, **options)``) of the architecture's
representative (``SearchSpace.same_function``, then ``SearchSpace.live_arch``),
built at a fixed seed (``torch.manual_seed(seed)`` before building, weights
restored before each proxy), on one fixed mini-batch ``(x, y)``. Architectures
that compute the same function are scored once and share the value
(:func:`nsas.evaluate.distinct_functions`). Data-dependent proxies run the
network in training mode (BatchNorm on the batch's statistics); the network's
buffers are restored after each proxy, so a value does not depend on which
proxies were computed before it.

Built-in proxies (``proxy_names()``; ``"all"`` expands to every registered one):

``params``
    parameters of the live network at the space's default size
    (:func:`nsas.correlate.live_parameters`; nb201 in closed form).
``flops``
    multiply-adds per image of the live network at ``options``' size on one
    example of the batch (counted as :func:`nsas.inspection.count_macs` does).
``synflow``
    natural log of the SynFlow sum (Tanaka et al. 2020): every parameter
    replaced by its absolute value, float64, BatchNorm in eval mode (its
    initial running statistics), one all-ones input; ``R = sum(f(1))`` and the
    score is ``log(sum_theta |theta * dR/dtheta|)`` (the log keeps it finite;
    the order is that of the sum). Data-free.
``snip``
    ``sum |w * dL/dw|`` over the weights of every Conv and Linear layer, ``L``
    the mean cross-entropy on the batch (Lee et al. 2019, at initialisation).
``grad_norm``
    sum over the same weight tensors of ``||dL/dw||_2``.
``fisher``
    sum over every channel (unit) of every Conv/Linear output ``a`` of
    ``0.5 * mean_n (sum_{spatial} a * dL/da)^2`` (Theis et al. 2018, as the
    zero-cost proxy of Abdelfattah et al. 2021).
``jacov``
    Jacobian covariance (Mellor et al. 2020, v1): ``J_n = d(sum f(x))/dx_n``
    flattened per example, ``C`` their correlation matrix (a zero-variance row
    gets correlation 0 with the others), eigenvalues ``l``; the score is
    ``-sum(log(l + k) + 1 / (l + k))`` with ``k = 1e-5``.
``naswot``
    ``log|det K|`` with ``K_ij = c_i . c_j + (1 - c_i) . (1 - c_j)``, ``c_n`` the
    binary pattern (input > 0) of example ``n`` at the input of every
    ``nn.ReLU`` module (Mellor et al. 2021); ``-inf`` when ``K`` is singular.

Text spaces (darts-rnn) get ``params`` only; the others raise
:class:`ProxyError`. :func:`register_proxy` adds your own: a function
``proxy(ctx) -> float`` of a :class:`ProxyContext`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nsas.errors import NsasError
from nsas.registry import Registry
from nsas.spaces.base import Architecture, SearchSpace

Batch = tuple[torch.Tensor, torch.Tensor]
BUILTIN = ("params", "flops", "synflow", "snip", "grad_norm", "fisher", "jacov", "naswot")
TEXT_OK = ("params",)  # proxies that mean something for text spaces
JACOV_K = 1e-5


class ProxyError(NsasError):
    """A proxy that is unknown or cannot be computed for this space or network."""


ProxyFn = Callable[["ProxyContext"], float]
_REGISTRY: Registry[ProxyFn] = Registry("proxy", {n: __name__ for n in BUILTIN}, error=ProxyError)


def register_proxy(name: str) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator: register ``proxy(ctx: ProxyContext) -> float`` (higher is better) as ``name``."""
    return _REGISTRY.register(name)


def proxy_names() -> list[str]:
    """Every registered proxy, built-in first."""
    return _REGISTRY.names()


def get_proxy(name: str) -> ProxyFn:
    """The proxy function registered as ``name``."""
    return _REGISTRY.get(name)


def parse_proxies(names: str | Sequence[str]) -> list[str]:
    """``"all"``, ``"count,jacov"`` or a list -> the proxy names (checked, repeats dropped).

    ``count`` is accepted as another name for ``params``.
    """
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        for name in (proxy_names() if item == "all" else ["params" if item == "count" else item]):
            get_proxy(name)  # unknown -> ProxyError naming the choices
            if name not in out:
                out.append(name)
    if not out:
        raise ProxyError("no proxy named; choose from " + ", ".join(proxy_names()) + " or all")
    return out


# ---------------------------------------------------------------- context
class ProxyContext:
    """What a proxy sees: one representative architecture, its network, the batch.

    Attributes:
        space, arch: the space and the representative architecture.
        batch: ``(x, y)`` on ``device``.
        options: ``build_network`` keyword options.
        seed: the seed of the weights (and of anything random in a forward).
    """

    def __init__(self, space: SearchSpace, arch: Architecture, batch: Batch, *, options: dict[str, Any],
                 seed: int, device: torch.device) -> None:
        self.space, self.arch, self.batch, self.options, self.seed = space, arch, batch, options, seed
        self.device = device
        self._model: nn.Module | None = None
        self._state: dict[str, torch.Tensor] = {}
        self._cache: dict[str, Any] = {}
        self.shared_seconds: dict[str, float] = {}  # time spent in :meth:`cached` computations, per key

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per architecture (proxies that share a pass); its time is kept in ``shared_seconds``."""
        if key not in self._cache:
            start = time.perf_counter()
            self._cache[key] = compute()
            self.shared_seconds[key] = time.perf_counter() - start
        return self._cache[key]

    def network(self) -> nn.Module:
        """The network with its initial weights and buffers (built once at ``seed``; restored each call)."""
        if self._model is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self._model = self.space.build_network(self.arch, **self.options).to(self.device)
            if self.device.type == "cpu" and self.batch is not None and self.batch[0].dim() == 4:
                self._model = self._model.to(memory_format=torch.channels_last)  # oneDNN's fast layout
            self._state = copy.deepcopy(self._model.state_dict())
        else:
            self._model.load_state_dict(self._state)
        for p in self._model.parameters():
            p.grad = None
        torch.manual_seed(self.seed)  # dropout / drop-path, if any
        return self._model


def _logits(out: Any) -> torch.Tensor:
    """The logits of a forward (DARTS networks in training with an auxiliary head return a pair)."""
    return out[0] if isinstance(out, tuple) else out


def _weight_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d))]


# ---------------------------------------------------------------- built-in proxies
@register_proxy("params")
def params(ctx: ProxyContext) -> float:
    """Live parameters at the space's default size (:func:`nsas.correlate.live_parameters`)."""
    from nsas.rankstats import live_parameters
    from nsas.spaces import SPACES

    if SPACES.entries.get(ctx.space.name) is ctx.space:
        return float(live_parameters([str(ctx.arch)], ctx.space.name)[0])
    return float(ctx.space.parameter_count(ctx.space.live_arch(ctx.arch)))  # an unregistered space object


@register_proxy("flops")
def flops(ctx: ProxyContext) -> float:
    """Multiply-adds per image of the live network (``options``' size, the batch's image size)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = ctx.network().eval()
    counter = FlopCounterMode(display=False)  # as nsas.inspection.count_macs, on one example of the batch
    with counter, torch.no_grad():
        model(ctx.batch[0][:1])
    return float(counter.get_total_flops() // 2)  # 2 FLOPs per multiply-add


@register_proxy("synflow")
def synflow(ctx: ProxyContext) -> float:
    """log of SynFlow's sum |theta * dR/dtheta| (absolute weights, all-ones input, float64, eval mode)."""
    from torch.func import functional_call

    model = ctx.network().eval()
    names = [n for n, _ in model.named_parameters()]
    weights = {n: p.detach().double().abs().requires_grad_(True) for n, p in model.named_parameters()}
    buffers = {n: (b.double() if b.is_floating_point() else b) for n, b in model.named_buffers()}
    ones = torch.ones((1, *ctx.batch[0].shape[1:]), dtype=torch.float64, device=ctx.device)
    out = _logits(functional_call(model, {**weights, **buffers}, (ones,)))
    grads = torch.autograd.grad(out.sum(), [weights[n] for n in names], allow_unused=True)
    total = sum(float((weights[n].detach() * g).abs().sum()) for n, g in zip(names, grads) if g is not None)
    return math.log(total) if total > 0 else -math.inf


def _loss_grads(ctx: ProxyContext) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], list[float]]:
    """(weight, dL/dweight) of every Conv/Linear layer, and the fisher term of each layer call
    (one forward and backward shared by snip, grad_norm and fisher)."""
    return ctx.cached("loss_grads", lambda: _compute_loss_grads(ctx))


def _compute_loss_grads(ctx: ProxyContext) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], list[float]]:
    model = ctx.network().train()
    layers = _weight_layers(model)
    if not layers:
        raise ProxyError(f"the {ctx.space.name} network has no Conv or Linear layer to score")
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: outputs.append(out)) for m in layers]
    x, y = ctx.batch
    try:
        loss = F.cross_entropy(_logits(model(x)), y)
    finally:
        for h in handles:
            h.remove()
    weights = [m.weight for m in layers]
    outputs = [o for o in outputs if o.requires_grad]
    grads = torch.autograd.grad(loss, weights + outputs, allow_unused=True)
    terms = []
    for a, g in zip(outputs, grads[len(weights):]):
        if g is None:
            continue
        prod = a.detach().double() * g.double()
        per_channel = prod.flatten(2).sum(-1) if prod.dim() > 2 else prod  # (N, C)
        terms.append(float(0.5 * per_channel.pow(2).mean(0).sum()))
    return [(w.detach(), g) for w, g in zip(weights, grads[:len(weights)])], terms


@register_proxy("snip")
def snip(ctx: ProxyContext) -> float:
    """sum |w * dL/dw| over Conv/Linear weights, L the mean cross-entropy on the batch (training mode)."""
    pairs, _ = _loss_grads(ctx)
    return float(sum(float((w * g).abs().sum()) for w, g in pairs if g is not None))


@register_proxy("grad_norm")
def grad_norm(ctx: ProxyContext) -> float:
    """sum over Conv/Linear weight tensors of ||dL/dw||_2 (mean cross-entropy, training mode)."""
    pairs, _ = _loss_grads(ctx)
    return float(sum(float(g.double().norm()) for _, g in pairs if g is not None))


@register_proxy("fisher")
def fisher(ctx: ProxyContext) -> float:
    """sum over channels of Conv/Linear outputs of 0.5 * mean_n (sum_spatial a * dL/da)^2."""
    _, terms = _loss_grads(ctx)
    return float(sum(terms))


@register_proxy("jacov")
def jacov(ctx: ProxyContext) -> float:
    """-sum(log(l + k) + 1/(l + k)) over the eigenvalues l of the correlation of input Jacobians."""
    model = ctx.network().train()
    x = ctx.batch[0].detach().clone().requires_grad_(True)
    out = _logits(model(x))
    if not out.requires_grad:  # the output does not depend on the input at all (a cell cut off by none edges)
        return -math.inf
    (jac,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if jac is None or not bool(jac.any()):  # nothing of the input reaches the output: the worst score
        return -math.inf
    return jacov_score(jac.reshape(len(x), -1))


def jacov_score(jac: torch.Tensor) -> float:
    """The jacov score of per-example Jacobian rows ``jac`` (N, D) (see the module docstring)."""
    j = jac.double()
    j = j - j.mean(1, keepdim=True)
    norm = j.norm(dim=1, keepdim=True)
    j = torch.where(norm > 0, j / norm.clamp_min(1e-300), torch.zeros_like(j))
    corr = j @ j.T
    corr.fill_diagonal_(1.0)
    eig = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eig + JACOV_K) + 1.0 / (eig + JACOV_K)).sum())


@register_proxy("naswot")
def naswot(ctx: ProxyContext) -> float:
    """log|det K| of the binary ReLU activation-pattern kernel (Mellor et al. 2021)."""
    model = ctx.network().train()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ProxyError(f"naswot needs nn.ReLU modules; the {ctx.space.name} network has none")
    n = len(ctx.batch[0])
    kernel = torch.zeros(n, n, dtype=torch.float64, device=ctx.device)

    def add(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        kernel.add_(pattern_kernel((inp[0] > 0).flatten(1)))

    handles = [m.register_forward_hook(add) for m in relus]
    try:
        with torch.no_grad():
            model(ctx.batch[0])
    finally:
        for h in handles:
            h.remove()
    return logdet_score(kernel)


def pattern_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K = c c^T + (1 - c)(1 - c)^T (float64) of binary codes (N, D), i.e. D minus the Hamming distances.

    Computed as ``2 c c^T - s_i - s_j + D`` (``s`` the row sums), exact in float32 for D < 2^24 per call
    (one ReLU's codes at a time; the sum over ReLUs is float64).
    """
    d = codes.shape[1]
    if d >= 2 ** 24:
        c = codes.double()
    else:
        c = codes.float()
    ones = (c @ c.T).double()
    s = c.sum(1, dtype=torch.float64)
    return 2 * ones - s[:, None] - s[None, :] + d


def logdet_score(kernel: torch.Tensor) -> float:
    """log|det K|; -inf when K is singular."""
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) != 0 else -math.inf


def naswot_score(codes: torch.Tensor) -> float:
    """log|det K| for binary codes (N, D): K = c c^T + (1 - c)(1 - c)^T."""
    return logdet_score(pattern_kernel(codes))


# ---------------------------------------------------------------- many architectures
class ProxyRows(list):
    """What :func:`score_proxies` returns: a list of rows, plus timings.

    Attributes:
        seconds: per proxy, mean seconds per distinct function (building the network excluded); a pass
            shared by several proxies is its own entry ``shared:<key>`` (``shared:loss_grads``: the one
            forward and backward of snip, grad_norm and fisher).
        build_seconds: mean seconds per distinct function to build its network at the seed.
        functions: how many distinct functions were computed.
    """

    seconds: dict[str, float]
    build_seconds: float
    functions: int


def proxy_batch(dataset: str = "cifar10-mini", batch_size: int = 64, *, seed: int = 0,
                data_dir: str | None = None, device: str | torch.device = "cpu") -> Batch:
    """One fixed mini-batch ``(x, y)`` of the data set's training split (shuffled with ``seed``, normalised,
    no augmentation) of ``batch_size`` images, or every training image of a smaller set."""
    from nsas import data as nsas_data

    ds = nsas_data.load_dataset(dataset, data_dir)
    if not isinstance(ds, nsas_data.ImageDataset):
        raise ProxyError(f"proxies take a batch of images; {dataset!r} is a text data set")
    batch_size = min(batch_size, len(ds.train_y))
    batches = nsas_data.ImageBatches(ds.train_x, ds.train_y, batch_size=batch_size, mean=ds.mean, std=ds.std,
                                     augment=False, shuffle=True, seed=seed, device=device)
    return next(iter(batches.epoch(0)))


def score_proxies(space: SearchSpace, archs: Sequence[Architecture | str], names: str | Sequence[str],
                  batch: Batch | None, *, seed: int = 0, options: dict[str, Any] | None = None,
                  device: str | torch.device = "cpu", progress: bool = False) -> ProxyRows:
    """Every proxy of ``names`` for every architecture.

    Args:
        space: the search space (an object; ``get_space(name)``).
        archs: architectures or their strings.
        names: proxy names, a comma-separated string, or ``"all"`` (:func:`parse_proxies`).
        batch: ``(x, y)`` images and labels (:func:`proxy_batch`); only ``params`` needs none.
        seed: the seed the networks are built (and run) with.
        options: ``space.build_network`` keyword options (nb201: channels, cells, num_classes).
        device: where the networks run.
        progress: show a progress bar.

    Returns:
        One row per architecture, in order: ``arch`` (canonical string) and one float per proxy
        (higher is better); ``.seconds`` holds each proxy's mean seconds per distinct function.
    """
    from tqdm import tqdm

    from nsas.evaluate import distinct_functions, share_scores

    names = parse_proxies(names)
    options = dict(options or {})
    device = torch.device(device)
    if space.kind == "text":
        bad = [n for n in names if n not in TEXT_OK]
        if bad:
            raise ProxyError(f"proxy {bad[0]!r} needs an image network; for the text space {space.name!r} "
                             f"only {', '.join(TEXT_OK)} is defined")
    if batch is None and any(n != "params" for n in names):
        raise ProxyError("proxies other than params need a batch of images")
    if batch is not None:
        x = batch[0].to(device)
        if device.type == "cpu" and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # same values; oneDNN runs it ~2x faster
        batch = (x, batch[1].to(device).reshape(-1))
    originals = [space.coerce(a) for a in archs]
    distinct, index = distinct_functions(originals)
    fns = {n: get_proxy(n) for n in names}
    spent = dict.fromkeys(names, 0.0)
    build = 0.0
    values = []
    for rep in tqdm(distinct, unit="arch", desc="proxies", disable=not progress, leave=False):
        live = space.live_arch(rep)
        ctx = ProxyContext(space, live, batch, options=options, seed=seed, device=device)
        row: dict[str, Any] = {"arch": str(rep)}
        if any(n != "params" for n in names):
            start = time.perf_counter()
            ctx.network()
            build += time.perf_counter() - start
        for n, fn in fns.items():
            start, before = time.perf_counter(), sum(ctx.shared_seconds.values())
            with torch.random.fork_rng(devices=[]):
                row[n] = float(fn(ctx))
            # a shared pass (snip, grad_norm, fisher: one backward) is timed apart, as "shared:<key>"
            spent[n] += time.perf_counter() - start - (sum(ctx.shared_seconds.values()) - before)
        for key, sec in ctx.shared_seconds.items():
            spent[f"shared:{key}"] = spent.get(f"shared:{key}", 0.0) + sec
        values.append(row)
    rows = ProxyRows(share_scores(originals, values, index))
    rows.seconds = {n: s / max(len(distinct), 1) for n, s in spent.items()}
    rows.build_seconds = build / max(len(distinct), 1)
    rows.functions = len(distinct)
    return rows


__all__ = ["BUILTIN", "ProxyContext", "ProxyError", "ProxyRows", "get_proxy", "jacov_score", "naswot_score",
           "parse_proxies", "proxy_batch", "proxy_names", "register_proxy", "score_proxies"]
