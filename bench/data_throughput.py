"""Is batched augmentation fast enough to keep a supernet step fed?

    python bench/data_throughput.py [--dataset cifar10-mini] [--device cpu] [--seconds 10]

Measures in one run, on one machine:
  * augmented images per second of ImageBatches (crop + flip + normalise +
    cutout 16) at batch 64 and 256, iterating whole epochs;
  * images per second consumed by a training step (forward, backward, SGD
    step) of the NAS-Bench-201 supernet (channels 16, 5 cells per stage) at
    batch 64, a freshly sampled architecture every step as in the search;
and prints a markdown table and the ratio data / training.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time

import torch

from nsas.data import ImageBatches, load_dataset
from nsas.spaces import get_space


def data_rate(ds, batch_size: int, device: str, seconds: float) -> float:
    """Augmented images per second over whole epochs (at least one)."""
    batches = ImageBatches(ds.train_x, ds.train_y, batch_size=batch_size, mean=ds.mean, std=ds.std,
                           augment=True, cutout=16, seed=0, device=device)
    next(batches.epoch(99))  # warm-up
    images, start, epoch = 0, time.perf_counter(), 0
    while epoch == 0 or time.perf_counter() - start < seconds:
        for x, _ in batches.epoch(epoch):
            images += len(x)
        epoch += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def train_rate(ds, batch_size: int, device: str, seconds: float) -> float:
    """Images per second through forward + backward + SGD step of the nb201 supernet."""
    space = get_space("nb201")
    net = space.build_supernet(channels=16, cells=5, num_classes=ds.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x, y = next(ImageBatches(ds.train_x, ds.train_y, batch_size=batch_size, mean=ds.mean, std=ds.std,
                             augment=True, cutout=16, device=device).epoch(0))
    rng = random.Random(0)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x, space.sample(rng)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    steps, start = 0, time.perf_counter()
    while steps < 5 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10-mini")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=10.0, help="minimum time per measurement")
    args = parser.parse_args()

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    rows = [(f"ImageBatches augment+cutout16, batch {b}", data_rate(ds, b, args.device, args.seconds))
            for b in (64, 256)]
    train = train_rate(ds, 64, args.device, args.seconds)
    rows.append(("nb201 supernet C16 N5 train step (fwd+bwd+SGD), batch 64", train))

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}; "
          f"data set {args.dataset} ({len(ds.train_x)} train images)")
    print()
    print("| measurement | images/s |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    print()
    for name, rate in rows[:2]:
        print(f"ratio data / training ({name.split(', ')[-1]}): {rate / train:.1f}x")


if __name__ == "__main__":
    main()
