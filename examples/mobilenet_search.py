"""NSAS on your own model: a MobileNet-style chain of inverted-residual blocks.

Each block chooses its depthwise kernel (3 or 5) and expansion ratio (3 or
6); blocks that keep the resolution may also be skipped. ``ChoiceSpace``
turns the candidate lists into a search space (supernet, sampling, GDAS
logits, distance, canonical strings); registering it makes it usable by
name everywhere: ``nsas.search``, ``nsas.rank``, ``nsas export``...

    python examples/mobilenet_search.py --epochs 5 --out runs/mobilenet
"""

from __future__ import annotations

import argparse

from torch import nn

import nsas
from nsas.spaces.choice import ChoiceSpace


def bn(channels: int) -> nn.BatchNorm2d:
    # search networks normalise with each batch's statistics (paths change every step)
    return nn.BatchNorm2d(channels, affine=False, track_running_stats=False)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, k x k depthwise (stride s), 1x1 project; residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), bn(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False), bn(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False), bn(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_space(width: int = 16, classes: int = 10) -> ChoiceSpace:
    """Four searchable blocks: (channels, stride) = (w, 1), (2w, 2), (2w, 1), (4w, 2)."""
    plan = [(width, width, 1), (width, 2 * width, 2), (2 * width, 2 * width, 1), (2 * width, 4 * width, 2)]
    points = []
    for c_in, c_out, stride in plan:
        point = {f"k{k}e{e}": (lambda c_in=c_in, c_out=c_out, k=k, e=e, s=stride:
                               InvertedResidual(c_in, c_out, k, e, s))
                 for k in (3, 5) for e in (3, 6)}
        if stride == 1 and c_in == c_out:
            point["skip"] = nn.Identity
        points.append(point)
    return ChoiceSpace(points, stem=lambda: nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False),
                                                          bn(width), nn.ReLU6()),
                       head=lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                  nn.Linear(4 * width, classes)))


def main(argv: list[str] | None = None) -> nsas.SearchResult:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="runs/mobilenet-nsas")
    args = p.parse_args(argv)

    nsas.register_space(mobilenet_space(args.width), name="mobilenet-chain")
    cfg = nsas.SearchConfig.preset("quick", space="mobilenet-chain", loss="nsas", epochs=args.epochs,
                                   steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size)
    result = nsas.search(cfg, args.out, progress=False)
    print(f"selected after {result.steps} steps ({result.passes} single-path passes):")
    for row in result.selected:
        print(f"  {row['acc']:6.2f}%  {row['arch']}")
    print(f"archive: {', '.join(result.archive)}")
    return result


if __name__ == "__main__":
    main()
