#!/usr/bin/env python3
"""Runs `cnnzoo bench` and the PyTorch peer back to back, interleaved per model and phase on
the same cores, and prints the ratio table (cnnzoo images/s ÷ PyTorch images/s).

    .venv/bin/python benchmarks/compare.py [--cnnzoo target/debug/cnnzoo] [--steps 5] [MODEL ...]

Writes the raw results to benchmarks/results.jsonl and the table to stdout (markdown).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEVEN = ["d2l_lenet", "d2l_alexnet", "d2l_vgg11_r4", "d2l_nin", "d2l_googlenet", "d2l_resnet18", "d2l_densenet"]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def macs(cnnzoo, model):
    s = json.loads(subprocess.run([cnnzoo, "summary", model, "--shape-only", "--depth", "1", "--format", "json"],
                                  check=True, capture_output=True, text=True).stdout)
    return s["macs"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=SEVEN)
    ap.add_argument("--cnnzoo", default=os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo-target", "debug", "cnnzoo"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--extra", nargs="*", default=[], help="extra flags for both, e.g. --batch 1 --input 3,224,224")
    args = ap.parse_args()
    threads = os.cpu_count() or 1
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    rows, raw = [], []
    for model in args.models:
        m = macs(args.cnnzoo, model)
        for mode in ["train", "infer"]:
            common = ["--mode", mode, "--steps", str(args.steps), "--warmup", str(args.warmup)] + args.extra
            ours = run([args.cnnzoo, "bench", model, "--format", "json"] + common)[0]
            peer = run([sys.executable, os.path.join(HERE, "pytorch_peer.py"), model, "--threads", str(threads), "--macs", str(m)] + common)[0]
            raw += [ours, peer]
            ratio = ours["images_per_sec"]["median"] / peer["images_per_sec"]["median"]
            rows.append((model, mode, ours["batch"], ours["images_per_sec"]["median"], peer["images_per_sec"]["median"], ratio,
                         ours["gflops"], peer["gflops"], ours["phases"], peer["phases"]))
            print(f"{model} {mode}: cnnzoo {ours['images_per_sec']['median']:.1f} img/s, PyTorch {peer['images_per_sec']['median']:.1f} img/s, ratio {ratio:.2f}", file=sys.stderr)
    with open(os.path.join(HERE, "results.jsonl"), "w") as f:
        for r in raw:
            f.write(json.dumps(r) + "\n")
    date = datetime.date.today().isoformat()
    print(f"{date}, {cpu_name()}, {threads} threads, torch {raw[1].get('torch', '?')}, median of {args.steps} steps after {args.warmup} warm-up\n")
    print("| model | phase | batch | cnnzoo img/s | PyTorch img/s | ratio | cnnzoo GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for model, mode, b, o, p, r, og, pg, _, _ in rows:
        print(f"| {model} | {mode} | {b} | {o:.1f} | {p:.1f} | {r:.2f}× | {og:.1f} | {pg:.1f} |")
    print("\nper-phase medians (s), cnnzoo / PyTorch:")
    for model, mode, _, _, _, _, _, _, op, pp in rows:
        parts = [f"{n} {a:.3f}/{b:.3f}" for (n, a), (_, b) in zip(op, pp)]
        print(f"- {model} {mode}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
