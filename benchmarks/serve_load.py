#!/usr/bin/env python3
"""Loopback load test of `cnnzoo serve` with oha (https://github.com/hatoo/oha).

For each model (d2l LeNet and torchvision ResNet-18) and for micro-batching on (--max-batch 16)
and off (--max-batch 1), starts `cnnzoo serve`, waits for /healthz, runs oha at concurrency
1, 8 and 64 for SECONDS each, and prints p50/p99 latency, requests/s, errors and the server's
peak memory (VmHWM) as a markdown table (and JSON with --json FILE).

Optionally (--furnace BIN) the same ResNet-18 behind furnace-server, the Rust peer (Burn + axum,
dynamic batching), under the same load: see --help.

Standard library only. Needs: oha on PATH (`cargo install oha --locked`), the cnnzoo binary
(default: the dev build in $CARGO_TARGET_DIR or target/), and, to make the ResNet-18 run and a
photo-sized JPEG the first time, a Python with torch + torchvision (--torch-python, default
~/.cache/cnnzoo-torch-venv/bin/python). ResNet-18's weights are random (seed 0): speed does
not depend on them, and no weights are downloaded.
"""

import argparse
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_name():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    name = next((l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name")), "?")
    avx512 = "avx512f" in text
    return f"{name}, {os.cpu_count()} cores, {'AVX-512' if avx512 else 'AVX2 + FMA, no AVX-512'}"


def peak_kib(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_http(url, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def oha(url, body, content_type, concurrency, seconds):
    cmd = [
        # -w: requests still running at the deadline are waited for, not counted as errors.
        "oha", "-z", f"{seconds}s", "-w", "-c", str(concurrency), "--no-tui", "--output-format", "json",
        "-m", "POST", "-H", f"content-type: {content_type}", "-D", str(body), url,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    codes = d.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    errors = sum(int(v) for k, v in codes.items() if k != "200") + sum(d.get("errorDistribution", {}).values())
    p = d["latencyPercentiles"]
    return {
        "concurrency": concurrency,
        "rps": ok / d["summary"]["total"],
        "p50_ms": (p.get("p50") or 0) * 1e3,
        "p99_ms": (p.get("p99") or 0) * 1e3,
        "ok": ok,
        "errors": errors,
    }


def serve_and_load(binary, name, run, body, content_type, max_batch, seconds, concurrencies):
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "serve", f"{name}={run}", "--addr", f"127.0.0.1:{port}", "--max-batch", str(max_batch)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/models/{name}/predict"
        rows = [oha(url, body, content_type, c, seconds) for c in concurrencies]
        peak = peak_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return rows, peak


def furnace_load(binary, weights, body, max_batch, seconds, concurrencies):
    port = free_port()
    cmd = [str(binary), "--model-name", "resnet18", "--weights", str(weights), "--host", "127.0.0.1",
           "--port", str(port)]
    if max_batch > 1:
        cmd += ["--max-batch-size", str(max_batch)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/predict"
        rows = [oha(url, body, "image/jpeg", c, seconds) for c in concurrencies]
        peak = peak_kib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return rows, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5, help="oha duration per point (default 5)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--models", default="lenet,resnet18")
    ap.add_argument("--binary", help="the cnnzoo binary (default: the dev build)")
    ap.add_argument("--work", default="/tmp/cnnzoo-serve-load", help="runs and request bodies go here")
    ap.add_argument("--torch-python", default=str(pathlib.Path.home() / ".cache/cnnzoo-torch-venv/bin/python"))
    ap.add_argument("--furnace", help="the `furnace` binary of furnace-server (crate furnace-cli): also "
                    "load it with the same ResNet-18 and the same JPEG. furnace compiles its models in: "
                    "put our `cnnzoo export RUN --format onnx` as resnet18.onnx in a folder and run "
                    "`FURNACE_MODELS_DIR=FOLDER cargo install furnace-cli --version 0.16.2 --locked "
                    "--features image --target-dir T`; the weights are then T/release/build/furnace-burn-*/"
                    "out/models/resnet18.bpk (--furnace-weights)")
    ap.add_argument("--furnace-weights", help="the .bpk furnace's build made from our ONNX export")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = pathlib.Path(args.binary) if args.binary else target / "debug" / "cnnzoo"
    if not binary.is_file():
        raise SystemExit(f"{binary} not found: build it with `cargo build` (or give --binary)")
    if subprocess.run(["oha", "--version"], capture_output=True).returncode != 0:
        raise SystemExit("oha not found: cargo install oha --locked")
    work = pathlib.Path(args.work)
    (work / "runs").mkdir(parents=True, exist_ok=True)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    models = args.models.split(",")

    cases = {}
    if "lenet" in models:
        run = work / "runs" / "lenet"
        if not run.exists():
            subprocess.run([str(binary), "import", str(ROOT / "tests/fixtures/parity/d2l_lenet.pth"),
                            "--model", "d2l_lenet", "--out", str(run)], check=True)
        cases["lenet"] = (run, ROOT / "docs/examples/ankle-boot.png", "image/png", "28×28 PNG")
    if "resnet18" in models:
        run = work / "runs" / "resnet18"
        photo = work / "photo.jpg"
        if not run.exists() or not photo.exists():
            script = (
                "import sys, torch, torchvision\n"
                "from PIL import Image\n"
                "torch.manual_seed(0)\n"
                "torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])\n"
                "g = torch.Generator().manual_seed(0)\n"
                "x = (torch.rand(375, 500, 3, generator=g) * 255).to(torch.uint8).numpy()\n"
                "Image.fromarray(x).save(sys.argv[2], quality=90)\n"
            )
            subprocess.run([args.torch_python, "-c", script, str(work / "resnet18.pth"), str(photo)], check=True)
            if not run.exists():
                subprocess.run([str(binary), "import", str(work / "resnet18.pth"), "--model", "resnet18",
                                "--out", str(run)], check=True)
        cases["resnet18"] = (run, photo, "image/jpeg", "500×375 JPEG")

    results = {"cpu": cpu_name(), "seconds": args.seconds, "date": time.strftime("%Y-%m-%d"), "rows": []}
    print(f"CPU: {results['cpu']}; oha {args.seconds:g} s per point, loopback", file=sys.stderr)
    for name, (run, body, ctype, what) in cases.items():
        for max_batch in (16, 1):
            print(f"{name}, --max-batch {max_batch} …", file=sys.stderr)
            rows, peak = serve_and_load(binary, name, run, body, ctype, max_batch, args.seconds, concurrencies)
            for r in rows:
                results["rows"].append({"server": "cnnzoo", "model": name, "body": what,
                                        "max_batch": max_batch, "peak_mib": peak and peak / 1024, **r})
    if args.furnace:
        if not args.furnace_weights or "resnet18" not in cases:
            raise SystemExit("--furnace needs --furnace-weights and the resnet18 case")
        for max_batch in (16, 1):
            print(f"furnace, resnet18, --max-batch-size {max_batch} …", file=sys.stderr)
            rows, peak = furnace_load(args.furnace, args.furnace_weights, cases["resnet18"][1], max_batch,
                                      args.seconds, concurrencies)
            for r in rows:
                results["rows"].append({"server": "furnace", "model": "resnet18", "body": cases["resnet18"][3],
                                        "max_batch": max_batch, "peak_mib": peak and peak / 1024, **r})

    print("| server | model | request | micro-batching | concurrency | req/s | p50 ms | p99 ms | errors | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        batching = "on (16)" if r["max_batch"] > 1 else "off"
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] else "?"
        print(f"| {r['server']} | {r['model']} | {r['body']} | {batching} | {r['concurrency']} | {r['rps']:.1f} "
              f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {peak} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
