#!/usr/bin/env python3
"""PyTorch's time for each convolution of torchvision's ResNet-18 (the list of
kernels/examples/conv_probe.rs): `python benchmarks/conv_peer.py [BATCH] [train]`."""
import sys
import time

import torch

LAYERS = [
    (3, 64, 7, 2, 3, 224, 1),
    (64, 64, 3, 1, 1, 56, 4),
    (64, 128, 3, 2, 1, 56, 1),
    (64, 128, 1, 2, 0, 56, 1),
    (128, 128, 3, 1, 1, 28, 3),
    (128, 256, 3, 2, 1, 28, 1),
    (128, 256, 1, 2, 0, 28, 1),
    (256, 256, 3, 1, 1, 14, 3),
    (256, 512, 3, 2, 1, 14, 1),
    (256, 512, 1, 2, 0, 14, 1),
    (512, 512, 3, 1, 1, 7, 3),
]


def main():
    n = next((int(a) for a in sys.argv[1:] if a.isdigit()), 1)
    train = "train" in sys.argv[1:]
    total = 0.0
    for ci, co, k, s, p, hw, reps in LAYERS:
        conv = torch.nn.Conv2d(ci, co, k, s, p, bias=False)
        x = torch.randn(n, ci, hw, hw, requires_grad=train)
        best = float("inf")
        for _ in range(8):
            t = time.perf_counter()
            if train:
                y = conv(x)
                y.backward(torch.full_like(y, 0.5))
            else:
                with torch.no_grad():
                    y = conv(x)
            best = min(best, time.perf_counter() - t)
        ho = (hw + 2 * p - k) // s + 1
        flops = 2 * n * co * ho * ho * ci * k * k * (3 if train else 1)
        total += best * reps
        print(f"{ci:>3}→{co:<3} {k}×{k} s{s} {hw:>3}²  ×{reps}: {best * 1e3:7.3f} ms  {flops / best / 1e9:6.1f} GFLOP/s")
    print(f"total (with repeats): {total * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
