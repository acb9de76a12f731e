"""What the CPU offers the local model: native bf16, fast int8 and fp16 kernels, and the
cores other programs leave free.

Why a busy machine slowed a step about 10 times: torch splits every matrix product
between its OpenMP threads, one per core, and each product waits for its slowest
thread. When another program holds a core, the thread on that core runs only now and
then, and the others spin at every barrier until it does. :class:`ThreadPolicy` gives
each step as many threads as there are cores that other programs left free over the
time since the last step (read from ``/proc/stat`` on Linux), so a step on a busy
machine runs on fewer threads that do not wait on each other.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

# /proc/cpuinfo flags of instructions that multiply bf16 natively: AVX-512 BF16, AMX
# (Intel Sapphire Rapids on, AMD Zen 4 on) and Arm's BF16 extension.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# The load is read over the time since the last step began, if that is at least
# MIN_WINDOW and at most STALE_AFTER seconds; otherwise over SAMPLE_WINDOW seconds now.
MIN_WINDOW = 0.2
STALE_AFTER = 30.0
SAMPLE_WINDOW = 0.1


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; macOS: its ``FEAT_BF16``)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        if path.is_file():
            cpuinfo = path.read_text(errors="replace")
        elif platform.system() == "Darwin":
            return frozenset({"bf16"}) if _sysctl("hw.optional.arm.FEAT_BF16") == "1" else (
                frozenset())
        else:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return frozenset(value.split())
    return frozenset()


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 natively (else torch emulates it, slower than fp32)."""
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))


def fbgemm(capability: str | None = None, engines: list[str] | None = None) -> bool:
    """Whether torch's fbgemm kernels (x86, vectorized from AVX2 on) run here."""
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if engines is None:
        engines = list(torch.backends.quantized.supported_engines)
    return capability in ("AVX2", "AVX512") and "fbgemm" in engines


def int8_kernel(capability: str | None = None, engines: list[str] | None = None) -> str | None:
    """torch's fastest kernel for int8 weights here: ``"pack"``, ``"fbgemm"`` or None.

    ``"pack"`` (``torch.ops.aten._weight_int8pack_mm``: int8 weights, fp32 activations)
    is vectorized for AVX-512 only, and elsewhere a scalar loop many times slower than an
    fp32 product; ``"fbgemm"`` (``torch.ops.quantized.linear_dynamic``: it also rounds
    each product's activations to 7-bit integers) is vectorized on AVX2 as well.
    """
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512" and hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        return "pack"
    return "fbgemm" if fbgemm(capability, engines) else None


def fast_int8(capability: str | None = None) -> bool:
    """Whether int8 weights multiply fp32 activations fast here (AVX-512's ``"pack"``)."""
    return int8_kernel(capability, []) == "pack"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Reading:
    """Seconds of busy CPU time, of all programs and of this one, at a moment."""

    wall: float
    busy: float | None  # all programs, on this process's cores; None where unknown
    own: float


def read_cpu(stat: str | None = None, cores: set[int] | None = None) -> Reading:
    """A :class:`Reading` now (``/proc/stat`` on Linux; elsewhere ``busy`` is None)."""
    wall, own = time.monotonic(), time.process_time()
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return Reading(wall, None, own)
    if cores is None:
        try:
            cores = os.sched_getaffinity(0)
        except AttributeError:
            cores = set()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in stat.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cores:
            continue
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait;
        # steal is time the hypervisor gave this core to another machine.
        busy += sum(int(v) for k, v in enumerate(fields[:8]) if k not in (3, 4))
    return Reading(wall, busy / tick, own)


def others_busy(before: Reading, after: Reading) -> float | None:
    """Cores that other programs kept busy between two readings (None where unknown)."""
    seconds = after.wall - before.wall
    if before.busy is None or after.busy is None or seconds <= 0:
        return None
    return max(0.0, (after.busy - before.busy - (after.own - before.own)) / seconds)


def threads_for(cores: int, others: float | None) -> int:
    """Threads for a step: the cores that others leave free, rounded, at least one."""
    if others is None:
        return cores
    return max(1, min(cores, math.floor(cores - others + 0.5)))


class ThreadPolicy:
    """Sets torch's thread count for each step from the cores that are free.

    ``adaptive=False`` leaves torch's thread count alone (its default: one thread per
    core, busy or not). Inside :meth:`step` torch runs on :func:`threads_for` threads,
    at most as many as it had before; the count is restored afterwards.
    """

    def __init__(self, adaptive: bool = True):
        self.adaptive = bool(adaptive)
        self._since = read_cpu()
        self.threads: int | None = None  # used by the last step
        self.others: float | None = None  # cores busy with other programs before it

    def __repr__(self) -> str:
        return f"ThreadPolicy(adaptive={self.adaptive})"

    def _others_now(self) -> float | None:
        """Cores busy with other programs lately (see ``MIN_WINDOW``, ``STALE_AFTER``)."""
        now = read_cpu()
        span = now.wall - self._since.wall
        if span > STALE_AFTER or (span < MIN_WINDOW and self.others is None):
            time.sleep(SAMPLE_WINDOW)
            self._since, now = now, read_cpu()
        elif span < MIN_WINDOW:  # too short to tell: keep the last estimate
            return self.others
        others, self._since = others_busy(self._since, now), now
        return others

    @contextmanager
    def step(self) -> Iterator[int]:
        """Run a step on the threads the machine has free; yields their number."""
        before = torch.get_num_threads()
        if not self.adaptive:
            self.threads, self.others = before, None
            yield before
            return
        self.others = self._others_now()
        self.threads = threads_for(min(before, usable_cores()), self.others)
        torch.set_num_threads(self.threads)
        try:
            yield self.threads
        finally:
            torch.set_num_threads(before)
