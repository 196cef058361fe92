"""Search splits and batch iterators with batched augmentation.

Every batch is a pure function of ``(seed, epoch, batch index)``: the epoch's
order comes from a generator seeded with ``(seed, epoch)``, each batch's
augmentation from one seeded with ``(seed, epoch, index)``. Resuming a run
therefore needs only the epoch and step counters, and ``epoch(e, start=k)``
yields exactly batches k, k+1, ... of ``epoch(e)``. Random numbers are drawn
on the CPU, so the batches do not depend on the device either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch

from nsas.errors import DataError

PAD = 4  # random-crop zero padding, in pixels


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of ints (distinct tuples, unrelated streams)."""
    digest = hashlib.blake2b(repr(tuple(int(k) for k in keys)).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def search_split(num: int, fraction: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(num)`` at random into a weights part and a validation part.

    Args:
        num: number of training examples.
        fraction: share that trains the supernet weights (floor of ``num * fraction``).
        seed: the split is a pure function of ``(num, fraction, seed)``.

    Returns:
        Sorted int64 index tensors ``(weights, validation)``: disjoint, together all of ``range(num)``.
    """
    n_weights = int(num * fraction)
    if not 0 < n_weights < num:
        raise DataError(
            f"a search split of {num} examples with fraction {fraction} leaves a part empty; "
            f"use 0 < fraction < 1 and at least 2 examples"
        )
    perm = torch.randperm(num, generator=generator(seed, num))
    return perm[:n_weights].sort().values, perm[n_weights:].sort().values


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Random crop from a zero-padded image, then horizontal flip, for a whole batch at once.

    Args:
        x: images (B, C, H, W), any dtype.
        dy: crop offsets (B,) in [0, 2 * pad]; ``pad`` means no vertical shift.
        dx: crop offsets (B,) in [0, 2 * pad].
        flip: bool (B,); True mirrors the image left-right.
        pad: zero padding on every side.

    Returns:
        Cropped (and flipped) images (B, C, H, W).
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (B, C, Hp, Wp), zeros around
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h  # (B, H)
    # flipping = reading the crop's columns right to left
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (B, W)
    # one gather over flattened pixels: several times faster than 4-D advanced indexing
    flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return padded.flatten(2).gather(2, flat).view(b, c, h, w)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square centred at (cy, cx) in each image, clipped to the image.

    Args:
        x: images (B, C, H, W).
        cy: centre rows (B,) in [0, H).
        cx: centre columns (B,) in [0, W).
        size: side of the square.

    Returns:
        A copy of ``x`` with the squares zeroed.
    """
    h, w = x.shape[-2:]
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r >= cy[:, None] - size // 2) & (r < cy[:, None] + size - size // 2)  # (B, H)
    in_cols = (c >= cx[:, None] - size // 2) & (c < cx[:, None] + size - size // 2)  # (B, W)
    keep = ~(in_rows[:, None, :, None] & in_cols[:, None, None, :])  # (B, 1, H, W)
    return x * keep.to(x.dtype)  # a broadcast multiply is cheaper than masked_fill here


class ImageBatches:
    """Shuffled, augmented, normalised mini-batches of a uint8 image tensor.

    The images stay on ``device`` as uint8; each batch is gathered, augmented
    (random crop with 4-pixel zero padding, horizontal flip, then normalised,
    then cutout as in DARTS: the hole is 0 after normalisation, i.e. the mean
    colour) and converted to float there.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        cutout: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if x.dtype != torch.uint8 or x.dim() != 4 or len(x) != len(y):
            raise DataError(
                f"images must be uint8 (N, C, H, W) with one label each, got {x.dtype} {tuple(x.shape)} and "
                f"{len(y)} labels"
            )
        if batch_size < 1 or (drop_last and len(x) < batch_size):
            raise DataError(
                f"batch size {batch_size} does not fit {len(x)} images; "
                f"use a batch size between 1 and {len(x)}"
            )
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, torch.int64)
        self.batch_size, self.augment, self.cutout = batch_size, augment, cutout
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        # x / 255 -> (x / 255 - mean) / std folded into one scale and shift, shape (1, C, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) / std_t

    def __len__(self) -> int:
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> torch.Tensor:
        """The epoch's example order (N,), on the CPU."""
        if not self.shuffle:
            return torch.arange(len(self.x))
        return torch.randperm(len(self.x), generator=generator(self.seed, epoch))

    def batch(self, idx: torch.Tensor, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` of ``epoch`` made from example indices ``idx`` (B,)."""
        idx = idx.to(self.device)
        x, y = self.x[idx], self.y[idx]  # (B, C, H, W) uint8, (B,)
        b, _, h, w = x.shape
        if self.augment:
            g = generator(self.seed, epoch, index)
            dy, dx = torch.randint(0, 2 * PAD + 1, (2, b), generator=g).to(self.device)
            flip = (torch.rand(b, generator=g) < 0.5).to(self.device)
            x = crop_flip(x, dy, dx, flip)
        x = x.float() * self.scale + self.shift  # (B, C, H, W) float32; addcmul's broadcast is slower
        if self.augment and self.cutout > 0:
            cy = torch.randint(0, h, (b,), generator=g).to(self.device)
            cx = torch.randint(0, w, (b,), generator=g).to(self.device)
            x = cutout(x, cy, cx, self.cutout)
        return x, y

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``start``, ``start + 1``, ... of ``epoch``: float images (B, C, H, W), int64 labels (B,)."""
        order = self.order(epoch)
        for i in range(start, len(self)):
            yield self.batch(order[i * self.batch_size : (i + 1) * self.batch_size], epoch, i)


class TextBatches:
    """Consecutive (input, next-token target) windows of a batchified token stream.

    The stream (T,) is cut into ``batch_size`` columns of length ``L = T // batch_size``
    (the tail is dropped), giving data (L, B); window i covers rows
    ``[i * bptt, i * bptt + bptt)`` and its target is the same window one row on.

    With ``random_bptt`` (AWD-LSTM and DARTS training) each window's length is
    drawn instead (:func:`random_window_length`), from a generator seeded with
    ``(seed, epoch)``: the windows of an epoch are a pure function of
    ``(seed, epoch)`` and still tile the data in order.
    """

    def __init__(self, tokens: torch.Tensor, *, batch_size: int, bptt: int, device: str | torch.device = "cpu",
                 random_bptt: bool = False, max_delta: int = 20, seed: int = 0) -> None:
        length = len(tokens) // batch_size if batch_size > 0 else 0
        if bptt < 1 or length < 2:
            raise DataError(
                f"{len(tokens)} tokens cannot make batches of {batch_size} columns with bptt {bptt}; "
                f"use a smaller batch size"
            )
        self.data = tokens[: length * batch_size].view(batch_size, length).t().contiguous().to(device)  # (L, B)
        self.bptt = bptt
        self.random_bptt, self.max_delta, self.seed = random_bptt, max_delta, seed

    def __len__(self) -> int:
        """Windows per epoch at the fixed length ``bptt`` (with ``random_bptt``: about as many, see :meth:`count`)."""
        return -(-(len(self.data) - 1) // self.bptt)

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        """``(first row, length)`` of every window of ``epoch``, in order."""
        rows = len(self.data) - 1  # the last row is only a target
        if not self.random_bptt:
            return [(a, min(self.bptt, rows - a)) for a in range(0, rows, self.bptt)]
        g = generator(self.seed, epoch)
        out, a = [], 0
        while a < rows:
            t = min(random_window_length(self.bptt, self.max_delta, g), rows - a)
            out.append((a, t))
            a += t
        return out

    def count(self, epoch: int) -> int:
        """Number of windows of ``epoch``."""
        return len(self.windows(epoch)) if self.random_bptt else len(self)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Windows ``start``, ``start + 1``, ...: x (T, B) and y (T, B), T <= bptt (shorter at the end;
        with ``random_bptt`` T is drawn per window)."""
        for a, t in self.windows(epoch)[start:]:
            yield self.data[a : a + t], self.data[a + 1 : a + 1 + t]


def random_window_length(bptt: int, max_delta: int, g: torch.Generator) -> int:
    """One window length of the AWD-LSTM family (Merity et al. 2018; DARTS ``rnn/train.py``).

    With probability 0.95 the mean is ``bptt``, else ``bptt / 2``; the length
    is a normal draw around it (standard deviation 5), at least 5 and at most
    ``bptt + max_delta``. Training scales the learning rate by ``length / bptt``.
    """
    mean = bptt if float(torch.rand((), generator=g)) < 0.95 else bptt / 2
    length = int(float(torch.normal(torch.tensor(float(mean)), 5.0, generator=g)))
    return min(max(5, length), bptt + max_delta)
