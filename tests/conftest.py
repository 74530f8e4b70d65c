"""Shared pytest configuration for chatanyone's tests (generic: fixtures for any part go here)."""
import os


def _build_lines():
    import chatanyone

    lines = [f"chatanyone build_info: {chatanyone.build_info()}"]
    try:
        import torch

        lines.append(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
                     f"cuda available: {torch.cuda.is_available()}")
    except ImportError:
        pass
    lines.append(f"cpu count: {os.cpu_count()}")
    return lines


def pytest_report_header(config):
    """Show what native build the tests run against (CI logs must show build_info())."""
    return _build_lines()


def pytest_sessionstart(session):
    """`pytest -q` (what CI runs) hides the report header: write the build lines anyway."""
    if session.config.option.verbose < 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in _build_lines():
                reporter.write_line(line)


# ------------------------------------------------------------------ per-test time limit
# `@pytest.mark.time_limit(seconds)`: a test still running after that long dumps every thread's
# stack and ends the test process (faulthandler), so a hang fails CI instead of stalling it. No
# plugin needed; pytest-timeout would do the same.
import faulthandler  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "time_limit(seconds): fail (end the run) if the test hangs")


@pytest.fixture(scope="module")
def basis():
    """The shipped face basis (``spec.head.load_basis``); the tests that take it skip where
    ``face_basis.npz`` is absent (a module may define its own ``basis`` instead)."""
    from chatanyone.spec.head import load_basis
    try:
        return load_basis()
    except FileNotFoundError:
        pytest.skip("no face_basis.npz")


@pytest.fixture(autouse=True)
def _time_limit(request):
    m = request.node.get_closest_marker("time_limit")
    if m is None:
        yield
        return
    faulthandler.dump_traceback_later(float(m.args[0]), exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
