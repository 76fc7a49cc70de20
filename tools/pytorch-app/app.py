#!/usr/bin/env python3
"""Startup workload for the pytorch test image.

Times `import torch` (the part a lazy image filesystem speeds up or slows
down), then runs one small matrix product so that the library is really used.
"""
import time

started = time.perf_counter()
import torch  # noqa: E402  (timed on purpose)
import_seconds = time.perf_counter() - started

print(f"torch version: {torch.__version__}")

generator = torch.Generator().manual_seed(1234)
left = torch.rand((64, 64), generator=generator)
right = torch.rand((64, 64), generator=generator)
t0 = time.perf_counter()
product = torch.matmul(left, right)
matmul_ms = (time.perf_counter() - t0) * 1000.0
print(f"64x64 matmul: trace {product.trace().item():.4f}, {matmul_ms:.3f} ms")
print(f"import torch: {import_seconds:.3f} s")
