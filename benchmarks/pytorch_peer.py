#!/usr/bin/env python3
"""The PyTorch peer of `cnnzoo bench`: the same models (tests/fixtures/make_fixtures.py holds the
d2l definitions; torchvision's own classes otherwise), shapes, batches, thread count, phases and
JSON schema, in PyTorch eager mode.

    .venv/bin/python benchmarks/pytorch_peer.py d2l_resnet18 --mode train --batch 256 --steps 5
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import make_fixtures as mf  # noqa: E402

D2L_BATCH = {"d2l_lenet": 256, "d2l_lenet_bn": 256, "d2l_alexnet": 128, "d2l_vgg11": 128, "d2l_vgg11_r4": 128,
             "d2l_nin": 128, "d2l_googlenet": 128, "d2l_resnet18": 256, "d2l_densenet": 256}


def peak_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def build(name, c):
    if name in mf.D2L:
        return mf.D2L[name][0]()
    kwargs = dict(num_classes=10)
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=False)
    model = getattr(mf.TV, name)(**kwargs)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    if c != first.in_channels:  # cnnzoo benches torchvision models on 1-channel input too
        raise SystemExit(f"{name}: use --input with 3 channels for torchvision models in the peer")
    return model


def batch(step, b, chw):
    c, h, w = chw
    n = b * c * 28 * 28
    i = torch.arange(n, dtype=torch.int64)
    x = ((i * 7919 + step * 31) % 256).float().div(255.0).reshape(b, c, 28, 28)
    if (h, w) != (28, 28):
        x = nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    y = (torch.arange(b) + step) % 10
    return x, y


def stat(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def run(name, mode, b, chw, steps, warmup, threads, macs):
    torch.manual_seed(0)
    model = build(name, chw[0])
    reset_peak()
    times, phases = [], []
    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for step in range(warmup + steps):
            t0 = time.perf_counter()
            x, y = batch(step, b, chw)
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.item()
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            t4 = time.perf_counter()
            if step >= warmup:
                times.append(t4 - t0)
                phases.append([t1 - t0, t2 - t1, t3 - t2, t4 - t3])
        names = ["data", "forward", "backward", "optimizer"]
    else:
        model.eval()
        with torch.inference_mode():
            for step in range(warmup + steps):
                t0 = time.perf_counter()
                x, _ = batch(step, b, chw)
                t1 = time.perf_counter()
                model(x).numpy()
                t2 = time.perf_counter()
                if step >= warmup:
                    times.append(t2 - t0)
                    phases.append([t1 - t0, t2 - t1])
        names = ["data", "forward"]
    s = stat(times)
    flops = 2.0 * macs * b * (3.0 if mode == "train" else 1.0)
    return {"framework": "pytorch", "model": name, "mode": mode, "batch": b, "input": list(chw), "threads": threads,
            "steps": steps, "images_per_sec": {"median": b / s["median"], "min": b / s["max"], "max": b / s["min"]},
            "step_seconds": s, "phases": [[n, statistics.median(p[i] for p in phases)] for i, n in enumerate(names)],
            "gflops": flops / s["median"] / 1e9, "peak_mib": peak_mib(), "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--mode", choices=["train", "infer", "both"], default="both")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--input", help="C,H,W")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--macs", type=float, help="MACs per image (from `cnnzoo summary`), for GFLOP/s")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        chw = [int(v) for v in args.input.split(",")] if args.input else (mf.D2L[name][1] if name in mf.D2L else [3, 224, 224])
        b = args.batch or D2L_BATCH.get(name, 128)
        modes = ["train", "infer"] if args.mode == "both" else [args.mode]
        for mode in modes:
            print(json.dumps(run(name, mode, b, chw, args.steps, args.warmup, args.threads, args.macs or 0.0)), flush=True)


if __name__ == "__main__":
    main()
