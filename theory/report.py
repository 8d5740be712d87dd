"""``python -m theory.report [PATH]``: the verdict tables, computed by running the checks, as Markdown.

A cell is "fails: <id>" when a catalogue counterexample for that cell verifies; "proved" when the verdict rule of
:mod:`theory.verdicts` proves it (and generated cases agree); "holds on N generated cases" when no rule decides it
and N generated cases found no counterexample. Any contradiction between these sources raises.
"""

from __future__ import annotations

import sys
from collections import Counter

from theory.activations import ACTIVATION_NAMES, ACTIVATIONS, Activation
from theory.cases import DIRECTIONS, KINDS, NOTIONS, implication, lemma1, lemma3
from theory.counterexamples import LAYER_CATALOGUE, LEMMA1, LEMMA3, Claim, entries_for, neuron_catalogue
from theory.generate import random_cases
from theory.verdicts import FAILS, PROVED, lemma1_verdict, lemma3_verdict, theorem_verdict

#: Generated cases per cell: a cross-check of "proved" cells, the evidence of undecided ones.
CASES_PER_CELL = 12
SEED = 20260324

NOTION_TITLES = {
    "grad_x": "∇ₓh (the theorem's gradient)",
    "grad_w": "∂h/∂w (the unit's own weight gradient)",
    "loss": "∂L/∂w of a training loss through a read-out (what experiments measure)",
}


LEMMAS = {LEMMA1: (lemma1_verdict, lemma1), LEMMA3: (lemma3_verdict, lemma3)}


def cell(act: Activation, kind: str, claim: Claim) -> str:
    if claim in LEMMAS:
        rule, holds = LEMMAS[claim]
        verdict = rule(act, kind)
    else:
        verdict = theorem_verdict(act, kind, claim[1], claim[2])
        holds = lambda case: implication(case, claim[1], claim[2]) is not False  # noqa: E731
    verified = [e for e in entries_for(act.name, kind, claim) if e.verify()]
    if verified:
        if verdict.status == PROVED:
            raise RuntimeError(f"{act.name}/{kind}/{claim}: proved by rule but {verified[0].id} breaks it")
        return f"fails: {verified[0].id}"
    if verdict.status == FAILS:
        raise RuntimeError(f"{act.name}/{kind}/{claim}: rule says fails but no counterexample verifies")
    checked = 0
    for case in random_cases(SEED, CASES_PER_CELL, act, kind):
        if not holds(case):
            raise RuntimeError(f"{act.name}/{kind}/{claim}: generated case breaks it: {case}")
        checked += 1
    return "proved" if verdict.status == PROVED else f"holds on {checked} generated cases"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def theorem_table(notion: str) -> list[str]:
    header = ["σ"] + [f"{kind} {d.replace('=>', '⇒')}" for d in DIRECTIONS for kind in KINDS]
    rows = [[f"`{a.name}`"] + [cell(a, k, ("theorem", notion, d)) for d in DIRECTIONS for k in KINDS] for a in ACTIVATIONS]
    return _table(header, rows)


def lemma_table() -> list[str]:
    header = ["σ"] + [f"{kind} (Lemma {claim[0][-1]})" for claim in LEMMAS for kind in KINDS]
    return _table(header, [[f"`{a.name}`"] + [cell(a, k, c) for c in LEMMAS for k in KINDS] for a in ACTIVATIONS])


def catalogue_table() -> list[str]:
    rows = [[f"`{c.id}`", c.violates, ", ".join(" ".join(x for x in claim if x) for claim in c.breaks),
             "verified" if c.verify() else "NOT VERIFIED", c.why] for c in LAYER_CATALOGUE]  # fmt: skip
    return _table(["id", "assumption / condition dropped", "breaks", "check", "why"], rows)


LEGEND = """\
Legend. A: s = 0 (Definition 1). B: the gradient is 0 on all of D and h(x₀) = 0 for some x₀ ∈ D (Theorem 1).
Domain kinds: `open` an open box or ball, μ uniform; `batch` s and L from a finite batch, ∀x/∃x₀ over the box it came from;
`finite` D is the finite sample; `affine` a relatively open patch of a hyperplane or coordinate subspace (an upstream
dead ReLU); `disconnected` two disjoint open boxes. A gradient that does not exist (a kink of σ) counts as non-zero.
"proved": the verdict rule in `theory/verdicts.py` reduces the cell to a fact about σ's zero, flat and kink sets and
sympy establishes that fact (vacuous when σ has no zero); each proved cell is also checked on {n} generated cases.
"holds on N generated cases": no rule decides it; N generated cases found no counterexample.
"fails: id": the counterexample `id` of `theory/counterexamples.py` verifies (`mechanism/kind/σ`; `kink/…` entries
are Assumption-1 failures). Assumptions 2 and 3 hold in Tables 1–4 (bounded D, a live companion unit); Assumption 1
(C¹) fails for ReLU, leaky ReLU and ReLU6, whose rows show what happens without it."""


def _number(c) -> str:
    return f"≈{float(c):.6g}" if c.is_Rational and c.q > 10**6 else str(c)


def _piece_text(p) -> str:
    point = "(" + ", ".join(_number(c) for c in p.point) + ")"
    if p.dim == 0:
        return point
    shape = "ball" if p.ball else "cube"
    return f"{point} + {shape}(r={p.radius}) on span{{{', '.join('(' + ', '.join(map(str, e)) + ')' for e in p.basis)}}}"


def neuron_examples_table() -> list[str]:
    """One entry per mechanism (the earliest activation and domain kind in catalogue order), with its data."""
    rows, chosen = [], {}
    rank = {name: i for i, name in enumerate(ACTIVATION_NAMES)}
    for c in neuron_catalogue():
        label, key = c.id.split("/")[0], (rank[c.activation], KINDS.index(c.kind))
        if label not in chosen or key < chosen[label][0]:
            chosen[label] = (key, c)
    for label in sorted(chosen):
        c = chosen[label][1]
        case = c.case
        d = case.domain
        region = "" if d.region == d.support else "; ∀ over " + " ∪ ".join(_piece_text(p) for p in d.region)
        data = (f"w = ({', '.join(map(str, case.w))}), b = {case.b}, read-out v = {case.v}, target t = ({', '.join(map(str, case.t))}); "
                f"μ on " + " ∪ ".join(_piece_text(p) for p in d.support) + region)  # fmt: skip
        rows.append([f"`{c.id}`", data, c.violates, c.why])
    return _table(["id", "data", "assumption / condition dropped", "why"], rows)


def render() -> str:
    out = ["# Verdict table: Lemmas 1–3 and Theorem 1 of the paper, per activation and domain kind", "",
           LEGEND.format(n=CASES_PER_CELL), ""]  # fmt: skip
    for i, notion in enumerate(NOTIONS, start=1):
        out += [f"## Table {i}: Theorem 1 with {NOTION_TITLES[notion]}", ""] + theorem_table(notion) + [""]
    out += ["## Table 4: Lemma 1 (s = 0 ⇒ h = 0 on all of D) and Lemma 3 (∇ₓh = 0 on D ⇒ h constant on D)", ""]
    out += lemma_table() + [""]
    mechanisms = Counter(c.id.split("/")[0] for c in neuron_catalogue())
    out += ["## Table 5: layer-level counterexamples (assumptions, floating point, the literal Eq. 17)", ""]
    out += catalogue_table() + [""]
    out += ["## Table 6: one neuron counterexample per mechanism (all are in `theory/counterexamples.py`)", ""]
    out += neuron_examples_table() + [""]
    out += ["Neuron counterexamples by mechanism: " + ", ".join(f"`{m}` × {k}" for m, k in sorted(mechanisms.items())), ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    print(text)
    if argv:
        with open(argv[0], "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
