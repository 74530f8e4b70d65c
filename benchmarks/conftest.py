"""Benchmark configuration: one thread count for torch and chatanyone, and a ratio table.

Within a pytest-benchmark group, every benchmark is compared with the group's baseline, the one
whose name starts with ``torch`` or ``opencv`` (the mesh warp): the table printed at the end gives
``baseline time / this time`` for the minimum and the median (> 1: faster than the baseline). On
a shared machine the minimum is the steadier of the two.
"""
import os

import pytest


def bench_threads() -> int:
    """Threads for both libraries: CHATANYONE_BENCH_THREADS, else all cores."""
    return int(os.environ.get("CHATANYONE_BENCH_THREADS", os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def same_thread_count():
    import torch

    from chatanyone import ops

    n = bench_threads()
    torch.set_num_threads(n)
    ops.set_num_threads(n)
    yield n


def pytest_report_header(config):
    import chatanyone

    return [f"benchmark threads (torch and chatanyone): {bench_threads()}",
            f"chatanyone build_info: {chatanyone.build_info()}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for b in session.benchmarks:
        if b.stats is not None and getattr(b.stats, "median", None):
            groups.setdefault(b.group, []).append(b)
    lines = []
    for group, items in sorted(groups.items(), key=lambda kv: str(kv[0])):
        base = [b for b in items if b.name.split()[0] in ("torch", "opencv")]
        if not base:
            continue
        t = base[0].stats
        for b in items:
            if b is base[0]:
                continue
            s = b.stats
            lines.append(f"{group:<26} {b.name:<30} min: {base[0].name.split()[0]} {t.min * 1e3:8.3f} ms, "
                         f"this {s.min * 1e3:8.3f} ms, "
                         f"{t.min / s.min:6.2f}x | median: {t.median * 1e3:8.3f} / {s.median * 1e3:8.3f} ms, "
                         f"{t.median / s.median:6.2f}x")
    if lines:
        terminalreporter.write_sep("-", f"speed-up over the baseline ({bench_threads()} threads)")
        for line in lines:
            terminalreporter.write_line(line)
