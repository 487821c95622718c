"""The CPU shim for xtuner: loaded from PYTHONPATH at start-up, it gives torch.cpu the function xtuner calls."""

from __future__ import annotations

import os
import subprocess
import sys

from training.pipeline import CPU_PATCH_DIR

PROBE = "import torch; print(torch.cpu.is_bf16_supported())"


def _probe(pythonpath: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)


def test_the_shim_answers_for_torch_cpu():
    without = _probe(None)
    assert without.returncode != 0 and "is_bf16_supported" in without.stderr  # what breaks xtuner on CPU
    patched = _probe(str(CPU_PATCH_DIR))
    assert patched.returncode == 0, patched.stderr
    assert patched.stdout.strip() == "False"
