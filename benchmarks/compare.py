#!/usr/bin/env python3
"""Runs `cnnzoo bench` and the PyTorch peer back to back, interleaved per model and phase on
the same cores, and prints the ratio table (cnnzoo images/s ÷ PyTorch images/s).

    .venv/bin/python benchmarks/compare.py [--cnnzoo target/debug/cnnzoo] [--steps 5] [--min-seconds 2] [--reference] [--threads 1,2] [--rounds 3] [CASE ...]

A CASE is MODEL (training and inference at d2l's batch) or MODEL:MODE:BATCH (e.g.
resnet18:infer:1); torchvision models run on 3×224×224 with a 10-class head on both sides.
The default cases are the seven d2l models plus torchvision resnet18 inference at batch 1 and
32. `--reference` also runs cnnzoo with `--reference-kernels` (Burn's own ops: the "before"
column). `--threads 1,2` runs every case at each thread count on both sides (default: all cores)
and adds a thread-scaling table. `--rounds N` runs the whole list N times (PyTorch first in
every other round) and reports medians over the rounds: of each side's images/s, of the ratio
and of the thread scaling, each taken within a round from measurements minutes apart, with the
range over the rounds beside the scaling — on a shared host whose pace drifts, one round's
scaling can move by 0.2. Peak resident memory (VmHWM) of both processes is reported
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


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_run(runs):
    """The run with the median images/s (the lower of the middle two for an even count)."""
    return sorted(runs, key=lambda r: r["images_per_sec"]["median"])[(len(runs) - 1) // 2]


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
    ap.add_argument("--rounds", type=int, default=1, help="run every case this many times and report medians over the rounds")
    args = ap.parse_args()
    try:
        counts = [int(t) for t in args.threads.split(",")]
        assert counts and all(t >= 1 for t in counts)
    except (ValueError, AssertionError):
        sys.exit(f"--threads: expected comma-separated counts ≥ 1 such as 1,2, got {args.threads!r}")
    if args.rounds < 1:
        sys.exit(f"--rounds: expected a count ≥ 1, got {args.rounds}")
    raw, by_round = [], []
    steps_of = {}  # step count per case, chosen in the first round and kept for the others
    cases = [(c, t) for c in (args.cases or default_cases(args.cnnzoo)) for t in counts]
    for rnd in range(args.rounds):
        rows = []
        for case, threads in cases:
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            model, modes, case_extra = parse_case(case)
            for mode in modes:
                common = ["--mode", mode, "--steps", str(args.steps), "--warmup", str(args.warmup)] + case_extra + args.extra
                m = macs(args.cnnzoo, model, common)
                ours_cmd = [args.cnnzoo, "bench", model, "--format", "json"]
                peer_cmd = [sys.executable, os.path.join(HERE, "pytorch_peer.py"), model, "--threads", str(threads), "--macs", str(m)]
                key = (case, threads, mode)
                probe = None
                if key not in steps_of:
                    probe = run(ours_cmd + common, env)[0]
                    # Short steps (LeNet: ~15 ms) are noisy: time enough of them that each side
                    # runs at least --min-seconds, the same count on both sides.
                    step = probe["step_seconds"]["median"]
                    steps_of[key] = args.steps
                    if step * args.steps < args.min_seconds:
                        steps_of[key] = min(1000, int(args.min_seconds / max(step, 1e-4)) + 1)
                        probe = None
                common[common.index("--steps") + 1] = str(steps_of[key])
                # In every other round PyTorch runs first, so neither side always follows the other
                # (the first round's probe, which sets the step count, is cnnzoo's run there).
                if rnd % 2 == 1:
                    peer = run(peer_cmd + common, env)[0]
                    ours = probe or run(ours_cmd + common, env)[0]
                else:
                    ours = probe or run(ours_cmd + common, env)[0]
                    peer = run(peer_cmd + common, env)[0]
                before = run([args.cnnzoo, "--reference-kernels", "bench", model, "--format", "json"] + common, env)[0] if args.reference else None
                for r in (ours, before, peer):
                    if r:
                        r["round"] = rnd
                        raw.append(r)
                ratio = ours["images_per_sec"]["median"] / peer["images_per_sec"]["median"]
                rows.append((model, mode, ours["batch"], threads, ours, before, peer, ratio))
                b_txt = f", Burn ops {before['images_per_sec']['median']:.1f}" if before else ""
                r_txt = f"round {rnd + 1}/{args.rounds} " if args.rounds > 1 else ""
                print(f"{r_txt}{model} {mode} b{ours['batch']} t{threads}: cnnzoo {ours['images_per_sec']['median']:.1f} img/s{b_txt}, "
                      f"PyTorch {peer['images_per_sec']['median']:.1f} img/s, ratio {ratio:.2f}", file=sys.stderr)
        by_round.append(rows)
    # One row per case: each side's run with the median images/s over the rounds, and the
    # median of the rounds' ratios.
    rows = []
    for i, (model, mode, b, t, *_) in enumerate(by_round[0]):
        same = [rr[i] for rr in by_round]
        ours, before, peer = (median_run([x[k] for x in same]) if same[0][k] else None for k in (4, 5, 6))
        rows.append((model, mode, b, t, ours, before, peer, median([x[7] for x in same])))
    with open(os.path.join(HERE, "results.jsonl"), "w") as f:
        for r in raw:
            f.write(json.dumps(r) + "\n")
    date = datetime.date.today().isoformat()
    torch_v = next((r.get("torch") for r in raw if r.get("framework") == "pytorch"), "?")
    rounds = f", medians of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"{date}, {cpu_name()}, {args.threads} threads, torch {torch_v}, median of {args.steps} steps (more for fast cases: ≥ {args.min_seconds:g} s per side, same count on both) after {args.warmup} warm-up{rounds}\n")
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
        # Within each round (the two thread counts run minutes apart), then over the rounds.
        per_round = [{(m, mode, b, t): (o, p) for m, mode, b, t, o, _, p, _ in rr} for rr in by_round]
        span = args.rounds > 1
        print(f"\nthread scaling, images/s at {hi} threads ÷ at {lo}" + (f" (median and range of {args.rounds} rounds)" if span else "") + ":\n")
        print("| model | phase | batch | cnnzoo | PyTorch |")
        print("|---|---|---|---|---|")
        for m, mode, b, t, *_ in rows:
            if t != lo or (m, mode, b, hi) not in per_round[0]:
                continue
            pairs = [(by[(m, mode, b, lo)], by[(m, mode, b, hi)]) for by in per_round]
            cells = []
            for side in (0, 1):
                sc = [med(two[side]) / med(one[side]) for one, two in pairs]
                cells.append(f"{median(sc):.2f}×" + (f" ({min(sc):.2f}–{max(sc):.2f})" if span else ""))
            print(f"| {m} | {mode} | {b} | {cells[0]} | {cells[1]} |")
    print("\nper-phase medians (s), cnnzoo / PyTorch:")
    for model, mode, b, t, o, _, p, _ in rows:
        parts = [f"{n} {a:.3f}/{c:.3f}" for (n, a), (_, c) in zip(o["phases"], p["phases"])]
        print(f"- {model} {mode} b{b} t{t}: " + ", ".join(parts))

if __name__ == "__main__":
    main()
