#!/usr/bin/env python3
"""Runs `cnnzoo bench` and the PyTorch peer back to back, interleaved per model and phase on
the same cores, and prints the ratio table (cnnzoo images/s ÷ PyTorch images/s).

    .venv/bin/python benchmarks/compare.py [--cnnzoo target/debug/cnnzoo] [--steps 5] [--min-seconds 2] [--reference] [--threads 1,2] [CASE ...]

A CASE is MODEL (training and inference at d2l's batch) or MODEL:MODE:BATCH (e.g.
resnet18:infer:1); torchvision models run on 3×224×224 with a 10-class head on both sides.
The default cases are the seven d2l models plus torchvision resnet18 inference at batch 1 and
32. `--reference` also runs cnnzoo with `--reference-kernels` (Burn's own ops: the "before"
column). `--threads 1,2` runs every case at each thread count on both sides (default: all cores)
and adds a thread-scaling table. Peak resident memory (VmHWM) of both processes is reported
beside the throughput. Writes the raw results to benchmarks/results.jsonl and the table to stdout (markdown).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXTRA_CASES = ["resnet18:infer:1", "resnet18:infer:32"]


def default_cases(cnnzoo):
    """The seven d2l models as the registry lists them (`cnnzoo list`), plus EXTRA_CASES."""
    rows = json.loads(subprocess.run([cnnzoo, "list", "--format", "json"], check=True,
                                     capture_output=True, text=True).stdout)
    return [r["name"] for r in rows if r["d2l_seven"]] + EXTRA_CASES


def parse_case(case):
    """MODEL or MODEL:MODE:BATCH → (model, [modes], extra flags)."""
    parts = case.split(":")
    model = parts[0]
    modes = [parts[1]] if len(parts) > 1 else ["train", "infer"]
    extra = ["--batch", parts[2]] if len(parts) > 2 else []
    if not model.startswith("d2l_"):
        extra += ["--input", "3,224,224"]
    return model, modes, extra


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def macs(cnnzoo, model, flags):
    """MACs per image at the input the bench will use."""
    cmd = [cnnzoo, "summary", model, "--shape-only", "--depth", "1", "--format", "json"]
    if "--input" in flags:
        cmd += ["--input", flags[flags.index("--input") + 1]]
    s = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return s["macs"] / max(1, s.get("batch", 1))


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
    ap.add_argument("cases", nargs="*", help="default: the seven d2l models, then " + ", ".join(EXTRA_CASES))
    ap.add_argument("--cnnzoo", default=os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo-target", "debug", "cnnzoo"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--min-seconds", type=float, default=2.0, help="raise the step count of fast cases until each side times at least this long")
    ap.add_argument("--reference", action="store_true", help="also run cnnzoo on Burn's own ops (--reference-kernels)")
    ap.add_argument("--extra", nargs="*", default=[], help="extra flags for both, e.g. --batch 1 --input 3,224,224")
    ap.add_argument("--threads", default=str(os.cpu_count() or 1), help="comma-separated thread counts, e.g. 1,2 (default: all cores)")
    args = ap.parse_args()
    try:
        counts = [int(t) for t in args.threads.split(",")]
        assert counts and all(t >= 1 for t in counts)
    except (ValueError, AssertionError):
        sys.exit(f"--threads: expected comma-separated counts ≥ 1 such as 1,2, got {args.threads!r}")
    rows, raw = [], []
    cases = [(c, t) for c in (args.cases or default_cases(args.cnnzoo)) for t in counts]
    for case, threads in cases:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        model, modes, case_extra = parse_case(case)
        for mode in modes:
            common = ["--mode", mode, "--steps", str(args.steps), "--warmup", str(args.warmup)] + case_extra + args.extra
            m = macs(args.cnnzoo, model, common)
            ours = run([args.cnnzoo, "bench", model, "--format", "json"] + common, env)[0]
            # Short steps (LeNet: ~15 ms) are noisy: time enough of them that each side runs at
            # least --min-seconds, the same count on both sides.
            step = ours["step_seconds"]["median"]
            if step * args.steps < args.min_seconds:
                steps = min(1000, int(args.min_seconds / max(step, 1e-4)) + 1)
                common[common.index("--steps") + 1] = str(steps)
                ours = run([args.cnnzoo, "bench", model, "--format", "json"] + common, env)[0]
            before = run([args.cnnzoo, "--reference-kernels", "bench", model, "--format", "json"] + common, env)[0] if args.reference else None
            peer = run([sys.executable, os.path.join(HERE, "pytorch_peer.py"), model, "--threads", str(threads), "--macs", str(m)] + common, env)[0]
            raw += [r for r in (ours, before, peer) if r]
            ratio = ours["images_per_sec"]["median"] / peer["images_per_sec"]["median"]
            rows.append((model, mode, ours["batch"], threads, ours, before, peer, ratio))
            b_txt = f", Burn ops {before['images_per_sec']['median']:.1f}" if before else ""
            print(f"{model} {mode} b{ours['batch']} t{threads}: cnnzoo {ours['images_per_sec']['median']:.1f} img/s{b_txt}, "
                  f"PyTorch {peer['images_per_sec']['median']:.1f} img/s, ratio {ratio:.2f}", file=sys.stderr)
    with open(os.path.join(HERE, "results.jsonl"), "w") as f:
        for r in raw:
            f.write(json.dumps(r) + "\n")
    date = datetime.date.today().isoformat()
    torch_v = next((r.get("torch") for r in raw if r.get("framework") == "pytorch"), "?")
    print(f"{date}, {cpu_name()}, {args.threads} threads, torch {torch_v}, median of {args.steps} steps (more for fast cases: ≥ {args.min_seconds:g} s per side, same count on both) after {args.warmup} warm-up\n")
    med = lambda r: r["images_per_sec"]["median"]
    mib = lambda r: f"{r['peak_mib']:.0f}" if r.get("peak_mib") is not None else "-"
    if args.reference:
        print("| model | phase | batch | threads | before: Burn ops img/s | cnnzoo img/s | PyTorch img/s | before ratio | ratio | cnnzoo GFLOP/s | PyTorch GFLOP/s | cnnzoo peak MiB | PyTorch peak MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for model, mode, b, t, o, bf, p, r in rows:
            print(f"| {model} | {mode} | {b} | {t} | {med(bf):.1f} | {med(o):.1f} | {med(p):.1f} | {med(bf) / med(p):.2f}× | {r:.2f}× | {o['gflops']:.1f} | {p['gflops']:.1f} | {mib(o)} | {mib(p)} |")
    else:
        print("| model | phase | batch | threads | cnnzoo img/s | PyTorch img/s | ratio | cnnzoo GFLOP/s | PyTorch GFLOP/s | cnnzoo peak MiB | PyTorch peak MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for model, mode, b, t, o, _, p, r in rows:
            print(f"| {model} | {mode} | {b} | {t} | {med(o):.1f} | {med(p):.1f} | {r:.2f}× | {o['gflops']:.1f} | {p['gflops']:.1f} | {mib(o)} | {mib(p)} |")
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        by = {(m, mode, b, t): (o, p) for m, mode, b, t, o, _, p, _ in rows}
        print(f"\nthread scaling, images/s at {hi} threads ÷ at {lo}:\n")
        print("| model | phase | batch | cnnzoo | PyTorch |")
        print("|---|---|---|---|---|")
        for m, mode, b, t, o, _, p, _ in rows:
            if t != lo or (m, mode, b, hi) not in by:
                continue
            o2, p2 = by[(m, mode, b, hi)]
            print(f"| {m} | {mode} | {b} | {med(o2) / med(o):.2f}× | {med(p2) / med(p):.2f}× |")
    print("\nper-phase medians (s), cnnzoo / PyTorch:")
    for model, mode, b, t, o, _, p, _ in rows:
        parts = [f"{n} {a:.3f}/{c:.3f}" for (n, a), (_, c) in zip(o["phases"], p["phases"])]
        print(f"- {model} {mode} b{b} t{t}: " + ", ".join(parts))

if __name__ == "__main__":
    main()
