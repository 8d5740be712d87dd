"""Root pytest configuration: benchmarks run once, untimed, unless ``--benchmark-only`` is asked for.

Putting ``--benchmark-disable`` in ``addopts`` would make ``pytest --benchmark-only`` an error, so it is set here.
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if hasattr(config.option, "benchmark_only") and not config.option.benchmark_only:
        config.option.benchmark_disable = True
