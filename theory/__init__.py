"""theory: the paper's Lemmas 1–3 and Theorem 1 as exact, symbolic and property-based checks.

Imports :mod:`ocp` (to test its metric code against the exact verdicts); :mod:`ocp` never imports this package.
"""
