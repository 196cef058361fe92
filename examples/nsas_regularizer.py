"""NSAS as a drop-in regulariser for your own single-path supernet (a training loop of ~30 lines).

Any module with ``forward(x, path)`` works: here ``path.choices[i]`` names
the operation of layer ``i``. The archive keeps a few diverse past
architectures; each step adds their mean loss (times beta) to the current
one, so the shared weights do not forget them (NSAS, CVPR 2020).

    python examples/nsas_regularizer.py --steps 200
"""

from __future__ import annotations

import argparse
import random

import torch
from torch import nn

from nsas import NoveltyArchive, NSASObjective, load_dataset
from nsas.data import ImageBatches
from nsas.spaces.choice import ChoiceSpace


class MySupernet(nn.Module):
    """Four layers, each a 3x3 conv, a 5x5 conv or a skip; only the path's ops run."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.layers = nn.ModuleList(nn.ModuleDict({
            "k3": nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
            "k5": nn.Sequential(nn.Conv2d(width, width, 5, padding=2), nn.BatchNorm2d(width), nn.ReLU()),
            "skip": nn.Identity()}) for _ in range(4))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor, path) -> torch.Tensor:
        x = self.stem(x)
        for layer, op in zip(self.layers, path.choices):
            x = layer[op](x)
        return self.head(x)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    args = p.parse_args(argv)

    torch.manual_seed(0)
    space = ChoiceSpace.names_only([["k3", "k5", "skip"]] * 4, name="my-supernet")  # sampling + distance
    supernet = MySupernet(args.width)
    objective = NSASObjective(NoveltyArchive(space, capacity=4, pool_size=20, seed=0), beta=1.0)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    data = load_dataset("cifar10-mini")
    batches = ImageBatches(data.train_x, data.train_y, batch_size=args.batch_size, mean=data.mean, std=data.std,
                           augment=True)
    rng, step, losses = random.Random(0), 0, None
    while step < args.steps:
        for x, y in batches.epoch(step // len(batches)):
            arch = space.sample(rng)                       # 1. this step's architecture
            objective.observe(arch)                        # 2. recent pool + novelty archive
            optimizer.zero_grad()
            losses = objective.backward(supernet, arch, (x, y))  # 3. CE(arch) + beta * mean CE(archive)
            optimizer.step()                               # 4. update the shared weights
            step += 1
            if step % 50 == 0 or step == args.steps:
                print(f"step {step}: loss {losses.current:.3f}, archive loss {losses.archive:.3f}, "
                      f"{len(objective.archive)} members")
            if step == args.steps:
                break
    return {"loss": losses.current, "archive_loss": losses.archive, "passes": losses.passes,
            "members": len(objective.archive)}


if __name__ == "__main__":
    main()
