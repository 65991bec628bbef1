"""What this CPU can do fast, read from the kernel's CPU flags (torch-free: build and runtime both use it).

INT8 convolutions are fast with VNNI (AVX512-VNNI or AVX-VNNI; without it onnxruntime's U8S8 kernels
can saturate, so weights are quantized with a reduced range). BF16 is fast with AVX512-BF16 or AMX,
but onnxruntime's CPU provider has no BF16 convolution kernels, so ttsopt records the capability and
does not build BF16 graphs (see docs/precision.md).
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

#: Kernel flag → what it enables.
FLAGS = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI (INT8)", "avx_vnni": "AVX-VNNI (INT8)",
         "avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "avx512_fp16": "AVX512-FP16"}


@cache
def _cpuinfo(key: str) -> str:
    """The first ``key`` line of ``/proc/cpuinfo`` (empty where it is unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags of :data:`FLAGS` (x86 ``flags`` or Arm ``Features``)."""
    return frozenset((_cpuinfo("flags") or _cpuinfo("Features")).split()) & FLAGS.keys()


def has_int8_dot_product() -> bool:
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"}) or platform.machine().lower() in ("arm64", "aarch64")


def describe_cpu() -> dict:
    """For manifests and ``ttsopt bench``: the CPU, its fast-precision features and what ttsopt does with them."""
    flags = cpu_flags()
    return {"machine": platform.machine(), "processor": _cpuinfo("model name") or platform.processor() or "unknown",
            "features": sorted(FLAGS[flag] for flag in flags),
            "int8_dot_product": has_int8_dot_product(),
            "bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}


def gpu_identity() -> dict | None:
    """The first NVIDIA GPU's name and compute capability (from ``nvidia-smi``), or None without one."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    name, capability = (field.strip() for field in done.stdout.splitlines()[0].rsplit(",", 1))
    major, minor = capability.split(".")
    return {"name": name, "compute_capability": [int(major), int(minor)]}
