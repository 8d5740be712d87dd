"""Hypothesis profiles for ``pytest theory``: ``ci`` (default; derandomised, bounded, with a deadline) and
``thorough`` (many more examples, random seeds). Pick one with ``HYPOTHESIS_PROFILE=thorough``."""

import os

import pytest
from hypothesis import HealthCheck, settings

from theory.activations import ACTIVATIONS, CONVENTIONS, analyse, critical_point_count
from theory.verdicts import set_facts

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=40,
    deadline=2000,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def warm_activation_facts():
    """Compute the sympy facts once before any timed hypothesis example (SiLU/GELU take about a second each)."""
    for act in ACTIVATIONS:
        if not analyse(act).flat_solved:
            critical_point_count(act)
        for convention in CONVENTIONS:
            set_facts(act, convention)
