"""Benchmark configuration: one thread count for torch and chatanyone, and a ratio table.

Within a pytest-benchmark group, every benchmark is compared with the group's ``torch`` one:
the table printed at the end gives ``torch median / this median`` (> 1: faster than torch).
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
        base = [b for b in items if "torch" in b.name]
        if not base:
            continue
        t0 = base[0].stats.median
        for b in items:
            if b is base[0]:
                continue
            lines.append(f"{group:<22} {b.name:<44} torch {t0 * 1e3:8.3f} ms  this {b.stats.median * 1e3:8.3f} ms"
                         f"  ratio {t0 / b.stats.median:6.2f}x")
    if lines:
        terminalreporter.write_sep("-", f"speed-up over torch (median, {bench_threads()} threads)")
        for line in lines:
            terminalreporter.write_line(line)
