"""Shared pytest configuration for chatanyone's tests (generic: fixtures for any part go here)."""
import os


def pytest_report_header(config):
    """Show what native build the tests run against (CI logs must show build_info())."""
    import chatanyone

    info = chatanyone.build_info()
    lines = [f"chatanyone build_info: {info}"]
    try:
        import torch

        lines.append(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
                     f"cuda available: {torch.cuda.is_available()}")
    except ImportError:
        pass
    lines.append(f"cpu count: {os.cpu_count()}")
    return lines
