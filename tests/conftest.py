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
