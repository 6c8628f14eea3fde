"""Runs an ONNX file exported by cnnzoo in onnxruntime and compares the logits with cnnzoo's.

Usage: onnx_check.py CASE.json — CASE holds {"onnx": path, "shape": [b, c, h, w], "input": [...],
"logits": [...]}. Prints the max |Δ| relative to max(1, max |logit|); exits 1 above 1e-4, and 3 if
onnxruntime or numpy cannot be imported (the caller decides whether that is a failure).
"""
import json
import sys

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the test decides: a skip locally, a failure in CI
    print(f"missing: {e}")
    sys.exit(3)

case = json.load(open(sys.argv[1]))
x = np.asarray(case["input"], dtype=np.float32).reshape(case["shape"])
session = ort.InferenceSession(case["onnx"], providers=["CPUExecutionProvider"])
(got,) = session.run(None, {session.get_inputs()[0].name: x})
want = np.asarray(case["logits"], dtype=np.float32).reshape(got.shape)
scale = max(1.0, float(np.abs(want).max()))
diff = float(np.abs(got - want).max()) / scale
print(f"max |d|/scale = {diff:.2e}")
sys.exit(0 if diff <= 1e-4 else 1)
