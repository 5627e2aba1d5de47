"""What every benchmark prints beside its figures: the machine, its load, its peak memory and
its fp32 matrix-multiply rate, so that throughput can be read as a share of what the CPU can do.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine name where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def describe_machine() -> str:
    """One line: CPU model, core count and Python version."""
    return f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: figures taken under load understate the machine."""
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """This CPU's fp32 matrix-multiply rate with all of torch's threads, in GFLOP/s."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started) / 1e9
