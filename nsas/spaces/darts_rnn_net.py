"""The DARTS recurrent cell as a language model: stand-alone network and supernet.

The model follows DARTS (Liu et al. 2019, ``rnn/model.py``) closely::

    tokens (T, B) -> embedding (dropoute: whole words) -> locked dropout (dropouti)
      -> recurrent cell over time (dropoutx on x_t, dropouth on recurrent states)
      -> locked dropout (dropout) -> tied decoder (embedding matrix + bias) -> logits (T, B, V)

One step of the cell, with ``H`` the hidden size (= embedding size)::

    [c0, h0] = [x_t, h_{t-1}] @ W0               W0: (2H, 2H)
    s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1})
    node i (1..8), input state s_j, activation f:
    [c, h] = s_j @ W_i                           W_i: (H, 2H)
    s_i = s_j + sigmoid(c) * (f(h) - s_j)
    h_t = mean(s_1, ..., s_8)

A node whose op is ``none`` outputs zeros (in the DARTS search cell ``none``
contributes nothing to a node) and costs no matmul.

:class:`RNNModel` (one genotype) and :class:`RNNSupernet` (any genotype per
call) have the same parameters with the same names and shapes, so a supernet's
``state_dict`` loads into a stand-alone model (inherited weights). The
supernet keeps one ``W_i`` per node that every ``(input, op)`` choice of that
node shares, as the DARTS search model does. :func:`activation_regularisation`
is DARTS's AR/TAR penalty on the cell outputs (stand-alone training).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nsas.errors import ArchitectureError
from nsas.spaces.darts_rnn_arch import NODES, RnnGenotype

INIT_RANGE = 0.04  # uniform init of the recurrent matrices, as DARTS
EMBED_RANGE = 0.1  # uniform init of the (tied) embedding, as DARTS

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda h: h,
}


# ---------------------------------------------------------------- dropouts
def embedding_dropout(embed: nn.Embedding, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Look up ``tokens`` (T, B) -> (T, B, H), dropping whole words with probability ``p``.

    One mask per call over the vocabulary (V, 1): a dropped word is zero at
    every position of the batch, as in AWD-LSTM / DARTS.
    """
    if not training or p == 0:
        return embed(tokens)
    weight = embed.weight  # (V, H)
    mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - p) / (1 - p)
    return F.embedding(tokens, weight * mask)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Variational dropout on ``x`` (T, B, H): one (1, B, H) mask shared by every time step."""
    if not training or p == 0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


def _mask2d(like: torch.Tensor, p: float, training: bool) -> torch.Tensor | None:
    """A (B, H) dropout mask shaped like ``like``, or None when no dropout applies."""
    if not training or p == 0:
        return None
    return like.new_empty(like.shape).bernoulli_(1 - p) / (1 - p)


# ---------------------------------------------------------------- the cell
class RecurrentCell(nn.Module):
    """The DARTS recurrent cell; the genotype is an argument of :meth:`forward`.

    Args:
        hidden: hidden size H (the input x_t has the same size).
        dropouth: dropout on the recurrent state fed to W0 and to every W_i.
        dropoutx: dropout on x_t fed to W0.
        batchnorm: normalise s0 and every node state with BatchNorm without
            affine parameters and with batch statistics only
            (``track_running_stats=False``), as the DARTS search cell does
            (it keeps the shared weights stable while paths change).
    """

    def __init__(self, hidden: int, dropouth: float, dropoutx: float, *, batchnorm: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.dropouth = dropouth
        self.dropoutx = dropoutx
        self.W0 = nn.Parameter(torch.empty(2 * hidden, 2 * hidden).uniform_(-INIT_RANGE, INIT_RANGE))
        # One W_i per node, (H, 2H): shared by every input j the node may pick.
        self.Ws = nn.ParameterList(
            nn.Parameter(torch.empty(hidden, 2 * hidden).uniform_(-INIT_RANGE, INIT_RANGE))
            for _ in range(NODES)
        )
        self.bn = (
            nn.BatchNorm1d(hidden, affine=False, track_running_stats=False) if batchnorm else nn.Identity()
        )

    def forward(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        genotype: RnnGenotype,
        edge_weights: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Run the cell over a sequence.

        Args:
            x: inputs (T, B, H).
            h: initial state (B, H).
            genotype: the 8 ``(op, input)`` nodes to compute.
            edge_weights: GDAS only, 8 tensors of shape (1,); node i's state is
                multiplied by ``edge_weights[i - 1][0]``.

        Returns:
            The states h_1..h_T, shape (T, B, H).
        """
        # Masks are drawn once per sequence (variational dropout): (B, H) each.
        x_mask = _mask2d(x[0], self.dropoutx, self.training)
        h_mask = _mask2d(h, self.dropouth, self.training)
        outputs = []
        for t in range(x.size(0)):
            h = self.step(x[t], h, genotype, x_mask, h_mask, edge_weights)
            outputs.append(h)
        return torch.stack(outputs)

    def step(
        self,
        x: torch.Tensor,
        h_prev: torch.Tensor,
        genotype: RnnGenotype,
        x_mask: torch.Tensor | None,
        h_mask: torch.Tensor | None,
        edge_weights: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        """One time step: x (B, H), h_prev (B, H) -> h_t (B, H). One matmul per non-none node."""
        xh = torch.cat([_apply(x, x_mask), _apply(h_prev, h_mask)], dim=-1)  # (B, 2H)
        c0, h0 = (xh @ self.W0).chunk(2, dim=-1)
        s0 = h_prev + c0.sigmoid() * (h0.tanh() - h_prev)
        states = [self.bn(s0)]
        for i, (op, j) in enumerate(genotype.recurrent):
            s_in = states[j]
            if op == "none":
                states.append(torch.zeros_like(s_in))
                continue
            c, hh = (_apply(s_in, h_mask) @ self.Ws[i]).chunk(2, dim=-1)  # (B, H) each
            s = self.bn(s_in + c.sigmoid() * (_ACTIVATIONS[op](hh) - s_in))
            if edge_weights is not None:
                # After the normalisation: BatchNorm without affine would cancel a
                # scale factor and with it the gradient to alpha.
                s = s * edge_weights[i][0]
            states.append(s)
        return torch.stack(states[1:]).mean(dim=0)


def _apply(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


# ---------------------------------------------------------------- language models
class _LanguageModel(nn.Module):
    """Embedding, cell and tied decoder shared by the stand-alone model and the supernet."""

    def __init__(
        self,
        *,
        vocab: int,
        hidden: int,
        dropout: float,
        dropouth: float,
        dropoutx: float,
        dropouti: float,
        dropoute: float,
        batchnorm: bool,
    ) -> None:
        super().__init__()
        self.vocab, self.hidden = vocab, hidden
        self.dropout, self.dropouti, self.dropoute = dropout, dropouti, dropoute
        self.encoder = nn.Embedding(vocab, hidden)
        nn.init.uniform_(self.encoder.weight, -EMBED_RANGE, EMBED_RANGE)
        self.cell = RecurrentCell(hidden, dropouth, dropoutx, batchnorm=batchnorm)
        # The decoder matrix is the embedding matrix (weight tying); only the bias is its own.
        self.decoder_bias = nn.Parameter(torch.zeros(vocab))

    def _run(
        self,
        tokens: torch.Tensor,
        hidden: torch.Tensor,
        genotype: RnnGenotype,
        edge_weights: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        """tokens (T, B), hidden (B, H) -> cell outputs (T, B, H) before the output dropout."""
        if tokens.dim() != 2:
            raise ArchitectureError(f"expected tokens of shape (T, B), got {tuple(tokens.shape)}")
        emb = embedding_dropout(self.encoder, tokens, self.dropoute, self.training)  # (T, B, H)
        emb = locked_dropout(emb, self.dropouti, self.training)
        return self.cell(emb, hidden, genotype, edge_weights)

    def _decode(self, states: torch.Tensor) -> torch.Tensor:
        """states (T, B, H) -> logits (T, B, V) through the tied embedding matrix."""
        return self._logits(locked_dropout(states, self.dropout, self.training))

    def _logits(self, dropped: torch.Tensor) -> torch.Tensor:
        """Output-dropped states (T, B, H) -> logits (T, B, V)."""
        return F.linear(dropped, self.encoder.weight, self.decoder_bias)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """A zero state (B, H) on the model's device and dtype."""
        return self.decoder_bias.new_zeros(batch_size, self.hidden)


class RNNModel(_LanguageModel):
    """The stand-alone language model of one genotype (DARTS evaluation model).

    Args:
        genotype: the cell's architecture.
        vocab: vocabulary size V.
        hidden: embedding and hidden size H.
        dropout, dropouth, dropoutx, dropouti, dropoute: the DARTS dropouts
            (output, recurrent state, cell input, embedding output, whole words).
        batchnorm: normalise like the search cell (batch statistics, no
            affine); with it the model computes exactly what the supernet
            computes for ``genotype``, given the supernet's ``state_dict``.
    """

    def __init__(
        self,
        genotype: RnnGenotype,
        *,
        vocab: int = 10000,
        hidden: int = 850,
        dropout: float = 0.75,
        dropouth: float = 0.25,
        dropoutx: float = 0.75,
        dropouti: float = 0.2,
        dropoute: float = 0.1,
        batchnorm: bool = False,
    ) -> None:
        super().__init__(
            vocab=vocab, hidden=hidden, dropout=dropout, dropouth=dropouth,
            dropoutx=dropoutx, dropouti=dropouti, dropoute=dropoute, batchnorm=batchnorm,
        )  # fmt: skip
        self.genotype = genotype

    def forward(
        self, tokens: torch.Tensor, hidden: torch.Tensor | None = None, *, return_states: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """tokens (T, B), hidden (B, H) or None (zeros) -> (logits (T, B, V), new hidden (B, H)).

        Detach the returned hidden state before feeding it to the next batch
        (truncated back-propagation through time).

        With ``return_states`` the cell outputs (T, B, H) before and after the
        output dropout follow, the tensors DARTS's temporal activation
        regularisation (TAR) and activation regularisation (AR) penalise.
        """
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        states = self._run(tokens, hidden, self.genotype, None)
        dropped = locked_dropout(states, self.dropout, self.training)
        logits = self._logits(dropped)
        return (logits, states[-1], states, dropped) if return_states else (logits, states[-1])


class RNNSupernet(_LanguageModel):
    """The weight-sharing supernet: the genotype (path) is chosen per call.

    Only the chosen ``(input, op)`` of each node runs: one ``W_i`` matmul per
    node per time step, exactly the cost of the stand-alone model. Node and
    initial states go through BatchNorm without affine parameters and with
    batch statistics only (``track_running_stats=False``), as in the DARTS
    search cell; batches therefore need more than one sequence.

    Args: as :class:`RNNModel`, without the genotype (defaults are the DARTS
    search settings: hidden 300, no word dropout).
    """

    def __init__(
        self,
        *,
        vocab: int = 10000,
        hidden: int = 300,
        dropout: float = 0.75,
        dropouth: float = 0.25,
        dropoutx: float = 0.75,
        dropouti: float = 0.2,
        dropoute: float = 0.0,
    ) -> None:
        super().__init__(
            vocab=vocab, hidden=hidden, dropout=dropout, dropouth=dropouth,
            dropoutx=dropoutx, dropouti=dropouti, dropoute=dropoute, batchnorm=True,
        )  # fmt: skip

    def forward(
        self,
        tokens: torch.Tensor,
        path: RnnGenotype,
        edge_weights: Sequence[torch.Tensor] | None = None,
        *,
        hidden: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """tokens (T, B) -> logits (T, B, V) of the architecture ``path``.

        By default a call starts from a zero hidden state. A caller that runs
        one architecture through a text in order passes the state this same
        architecture returned for the previous window (``hidden``), as
        stand-alone evaluation does; a state computed by another architecture
        would leak that path into this one's loss (see ``carry_state`` in
        :mod:`nsas.search`).

        Args:
            tokens: token ids (T, B).
            path: a ``darts-rnn`` genotype.
            edge_weights: GDAS only, 8 tensors of shape (1,), one per node.
            hidden: initial state (B, H); None for zeros.
            return_hidden: also return the final state (B, H) (not detached).

        Returns:
            The logits, or ``(logits, final state)`` with ``return_hidden``.
        """
        if getattr(path, "space", None) != "darts-rnn":
            raise ArchitectureError(f"{path!r} is not an architecture of space 'darts-rnn'")
        if edge_weights is not None and len(edge_weights) != NODES:
            raise ArchitectureError(f"expected {NODES} edge weight tensors, got {len(edge_weights)}")
        if hidden is None:
            hidden = self.init_hidden(tokens.size(1))
        states = self._run(tokens, hidden, path, edge_weights)
        logits = self._decode(states)
        return (logits, states[-1]) if return_hidden else logits


def activation_regularisation(states: torch.Tensor, dropped: torch.Tensor, *, alpha: float,
                              beta: float) -> torch.Tensor:
    """DARTS's (and AWD-LSTM's) AR and TAR terms added to the language-model loss.

        AR  = alpha * mean(dropped ** 2)                     (output-dropped cell outputs)
        TAR = beta * mean((states[t + 1] - states[t]) ** 2)  (raw cell outputs, over time)

    Args:
        states: cell outputs h_1..h_T (T, B, H), before the output dropout.
        dropped: the same after the output dropout (T, B, H).
        alpha: AR weight (DARTS: 0).
        beta: TAR weight (DARTS: 1e-3).
    """
    reg = states.new_zeros(())
    if alpha > 0:
        reg = reg + alpha * dropped.pow(2).mean()
    if beta > 0 and states.size(0) > 1:
        reg = reg + beta * (states[1:] - states[:-1]).pow(2).mean()
    return reg


def macs_per_token(model: RNNModel) -> int:
    """Multiply-accumulates per token of a stand-alone model (matmuls only).

    W0 costs (2H)(2H), each non-``none`` node H(2H), the tied decoder H*V;
    the embedding lookup and the element-wise gates are not counted.
    """
    h, v = model.hidden, model.vocab
    nodes = sum(op != "none" for op, _ in model.genotype.recurrent)
    return 4 * h * h + nodes * 2 * h * h + h * v
