"""``python -m theory.report [PATH]``: the verdict tables, computed by running the checks, as Markdown.

A cell is "fails: <id>" when a catalogue counterexample for that cell verifies; "proved [n]" when the verdict rule of
:mod:`theory.verdicts` proves it and n generated cases built to satisfy its premise did and agreed; "vacuous: <why>"
when the rule shows the premise can never hold (and no generated case met it); "holds on n generated cases" when no
rule decides it. Any contradiction between these sources raises. Each gradient convention gets its own tables,
autograd's first.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

from theory.activations import ACTIVATION_NAMES, ACTIVATIONS, CONVENTIONS, Activation, analyse
from theory.cases import (
    DIRECTIONS,
    KINDS,
    NOTIONS,
    NeuronCase,
    dormant,
    grad_x_zero,
    implication,
    lemma1,
    lemma3,
    statement_b,
)
from theory.counterexamples import (
    LAYER_CATALOGUE,
    LEMMA1,
    Claim,
    entries_for,
    lemma3_claim,
    neuron_catalogue,
    theorem_claim,
)
from theory.generate import premise_cases_for
from theory.verdicts import FAILS, PROVED, UNDECIDED, VACUOUS, Verdict, lemma1_verdict, lemma3_verdict, theorem_verdict

#: Premise-directed cases generated per cell.
CASES_PER_CELL = 12
SEED = 20260324

NOTION_TITLES = {
    "grad_x": "∇ₓh (the theorem's gradient)",
    "grad_w": "∂h/∂w (the unit's own weight gradient)",
    "loss": "∂L/∂w of a training loss through a read-out (what experiments measure)",
}
CONVENTION_TITLES = {
    "autograd": (
        "A",
        "autograd's convention at kinks (ReLU'(0) = 0, ReLU6'(0) = ReLU6'(6) = 0, leaky ReLU'(0) = 0.01): "
        "what `ocp.metrics` and every experiment compute",
    ),
    "strict": ("S", "strict convention: a gradient that does not exist at a kink is not 0"),
    "clarke": (
        "C",
        'Clarke\'s generalised gradient: "the gradient is 0" reads 0 ∈ ∂h (at a kink, the interval '
        "between the one-sided slopes)",
    ),
}


@dataclass(frozen=True)
class Cell:
    text: str
    status: str
    premise_met: int


def _rule_and_checks(
    act: Activation, kind: str, claim: Claim
) -> tuple[Verdict, str, Callable[[NeuronCase], bool], Callable[[NeuronCase], Optional[bool]]]:
    """(verdict, premise name, premise test, the claim on one case) for a cell."""
    statement, notion, direction, convention = claim
    if statement == "lemma1":
        return lemma1_verdict(act, kind), "A", dormant, lemma1
    if statement == "lemma3":
        return (
            lemma3_verdict(act, kind, convention),
            "grad_x=0",
            lambda c: grad_x_zero(c, convention),
            lambda c: lemma3(c, convention),
        )
    verdict = theorem_verdict(act, kind, notion, direction, convention)
    if direction == "A=>B":
        premise, test = "A", dormant
    else:
        premise, test = f"B:{notion}", lambda c: statement_b(c, notion, convention) is True
    return verdict, premise, test, lambda c: implication(c, notion, direction, convention)


def _effective(act: Activation, claim: Claim) -> Claim:
    """Without a kink the three conventions read the same σ', so such cells are computed once."""
    if claim[3] and analyse(act).kinks.is_empty:
        return claim[:3] + (CONVENTIONS[0],)
    return claim


def cell(act: Activation, kind: str, claim: Claim) -> Cell:
    return _cell(act, kind, _effective(act, claim))


@lru_cache(maxsize=None)
def _cell(act: Activation, kind: str, claim: Claim) -> Cell:
    verdict, premise, premise_holds, claim_holds = _rule_and_checks(act, kind, claim)
    verified = [e for e in entries_for(act.name, kind, claim) if e.verify()]
    if verified:
        if verdict.status in (PROVED, VACUOUS):
            raise RuntimeError(f"{act.name}/{kind}/{claim}: {verdict.status} by rule but {verified[0].id} breaks it")
        return Cell(f"fails{' (IVT)' if verified[0].by_ivt else ''}: {verified[0].id}", FAILS, 0)
    if verdict.status == FAILS:
        raise RuntimeError(f"{act.name}/{kind}/{claim}: rule says fails but no counterexample verifies")
    met = 0
    generating_convention = claim[3] or CONVENTIONS[0]  # Lemma 1 involves no gradient
    for case in premise_cases_for(SEED, CASES_PER_CELL, act, kind, premise, generating_convention):
        if not premise_holds(case):
            continue
        holds = claim_holds(case)
        if holds is False:
            raise RuntimeError(f"{act.name}/{kind}/{claim}: generated case breaks it: {case}")
        met += holds is True
    if verdict.status == VACUOUS:
        if met:
            raise RuntimeError(f"{act.name}/{kind}/{claim}: vacuous by rule but a generated case meets the premise")
        return Cell(f"vacuous: {verdict.reason}", VACUOUS, 0)
    if verdict.status == PROVED:
        return Cell(f"proved [{met}]" if met else "proved", PROVED, met)
    assert verdict.status == UNDECIDED
    return Cell(f"holds on {met} generated cases" if met else "undecided", UNDECIDED, met)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def theorem_table(notion: str, convention: str) -> list[str]:
    header = ["σ"] + [f"{kind} {d.replace('=>', '⇒')}" for d in DIRECTIONS for kind in KINDS]
    rows = [
        [f"`{a.name}`"] + [cell(a, k, theorem_claim(notion, d, convention)).text for d in DIRECTIONS for k in KINDS]
        for a in ACTIVATIONS
    ]
    return _table(header, rows)


def lemma_claims(convention: str) -> tuple[Claim, Claim]:
    return LEMMA1, lemma3_claim(convention)


def lemma_table(convention: str) -> list[str]:
    claims = lemma_claims(convention)
    header = ["σ"] + [f"{kind} (Lemma {claim[0][-1]})" for claim in claims for kind in KINDS]
    return _table(header, [[f"`{a.name}`"] + [cell(a, k, c).text for c in claims for k in KINDS] for a in ACTIVATIONS])


def all_claims(convention: str) -> list[Claim]:
    return [theorem_claim(n, d, convention) for n in NOTIONS for d in DIRECTIONS] + list(lemma_claims(convention))


def _claim_text(claim: Claim) -> str:
    statement, notion, direction, _ = claim
    if statement != "theorem":
        return {"lemma1": "Lemma 1", "lemma3": "Lemma 3"}.get(statement, " ".join(x for x in claim if x))
    return f"Theorem 1, {notion}, {direction.replace('=>', '⇒')}"


def convention_differences_table() -> list[str]:
    rows = []
    for act in ACTIVATIONS:
        for claim in all_claims(CONVENTIONS[0]):
            if not claim[3]:
                continue  # Lemma 1 involves no gradient
            for kind in KINDS:
                texts = [cell(act, kind, claim[:3] + (c,)).text for c in CONVENTIONS]
                if len(set(t.split(" [")[0] for t in texts)) > 1:
                    rows.append([f"`{act.name}`", kind, _claim_text(claim)] + texts)
    return _table(["σ", "domain", "statement"] + [c for c in CONVENTIONS], rows)


def breaks_text(claims: tuple[Claim, ...]) -> str:
    """The claims an entry breaks, one statement per item with the conventions it breaks under."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for claim in claims:
        grouped.setdefault(claim[:3], []).append(claim[3])
    items = []
    for statement, conventions in grouped.items():
        text = " ".join(x for x in statement if x).replace("=>", "⇒")
        if any(conventions):
            text += " (every convention)" if set(conventions) == set(CONVENTIONS) else f" ({', '.join(conventions)})"
        items.append(text)
    return "; ".join(items)


def catalogue_table() -> list[str]:
    rows = [
        [f"`{c.id}`", c.violates, breaks_text(c.breaks), "verified" if c.verify() else "NOT VERIFIED", c.why]
        for c in LAYER_CATALOGUE
    ]
    return _table(["id", "assumption / condition dropped", "breaks", "check", "why"], rows)


LEGEND = """\
Legend. A: s = 0 (Definition 1). B: the gradient is 0 on all of D and h(x₀) = 0 for some x₀ ∈ D (Theorem 1).
Domain kinds: `open` an open box or ball, μ uniform; `batch` s and L from a finite batch, ∀x/∃x₀ over the box it came
from; `finite` D is the finite sample; `affine` a relatively open patch of a hyperplane or coordinate subspace (an
upstream dead ReLU); `disconnected` two disjoint open boxes.
Gradient conventions at a kink of σ (ReLU, leaky ReLU, ReLU6; elsewhere all three read σ'): `autograd` uses PyTorch's
value there (what the metrics measure, so its tables come first), `strict` counts a gradient that does not exist as
non-zero, `clarke` reads "the gradient is 0" as 0 ∈ Clarke's generalised gradient.
"proved [n]": the verdict rule in `theory/verdicts.py` reduces the cell to a fact about σ's zero, flat and kink sets and
sympy establishes that fact; n generated cases built to satisfy the cell's premise (A for A ⇒ B and Lemma 1, B for
B ⇒ A, ∇ₓh = 0 for Lemma 3) did, and the conclusion held on each. Of {n} cases drawn per cell, n counts those whose
premise the exact evaluator confirms and whose conclusion it decides; a cell without [n] claims no generated coverage.
"vacuous: why": the premise can never hold, so the implication holds and says nothing. "σ has no zero" (sigmoid,
softplus): s > 0 for every unit, so neither A nor "h(x₀) = 0" ever holds; for practice this means the theorem is silent
about these units, not that their gradient cannot vanish: a live sigmoid unit with zero outgoing weights has ∂L/∂w = 0
exactly as a ReLU unit does (`dead-outgoing`). "no zero of σ is flat": ∂h/∂w = σ'(z)·x = 0 at the points x ≠ 0 of a
positive-dimensional D near a zero of h needs a zero of σ that is a flat point.
"holds on n generated cases": no rule decides it; n premise-satisfying cases found no counterexample.
"fails: id": the counterexample `id` of `theory/counterexamples.py` verifies (`mechanism/kind/σ`; `kink-…` entries
are Assumption-1 failures); "fails (IVT): id": the break is shown by an intermediate-value argument, not by the stored
rational point (see below Table 6). Assumptions 2 and 3 hold in the Theorem and Lemma tables (bounded D, a live
companion unit); Assumption 1 (C¹) fails for ReLU, leaky ReLU and ReLU6, whose rows show what happens without it."""


def _number(c) -> str:
    return f"≈{float(c):.6g}" if c.is_Rational and c.q > 10**6 else str(c)


def _piece_text(p) -> str:
    point = "(" + ", ".join(_number(c) for c in p.point) + ")"
    if p.dim == 0:
        return point
    shape = "ball" if p.ball else "cube"
    return (
        f"{point} + {shape}(r={p.radius}) on span{{{', '.join('(' + ', '.join(map(str, e)) + ')' for e in p.basis)}}}"
    )


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
        data = (
            f"w = ({', '.join(map(str, case.w))}), b = {case.b}, read-out v = {case.v}, "
            f"target t = ({', '.join(map(str, case.t))}); "
            f"μ on " + " ∪ ".join(_piece_text(p) for p in d.support) + region
        )
        rows.append([f"`{c.id}`", data, c.violates, breaks_text(c.breaks), c.why])
    return _table(["id", "data", "assumption / condition dropped", "breaks", "why"], rows)


def lemma3_arguments() -> list[str]:
    """The recorded argument of each Lemma 3 cell proved by counting critical points (σ' with no closed-form zero)."""
    lines = []
    for act in ACTIVATIONS:
        verdict = lemma3_verdict(act, "finite", CONVENTIONS[0])
        if not analyse(act).flat_solved and verdict.status == PROVED:
            lines += [f"Lemma 3 on finite D for `{act.name}`: {verdict.reason}.", ""]
    return lines


def coverage_summary() -> str:
    counts = [
        cell(a, k, c).premise_met
        for conv in CONVENTIONS
        for a in ACTIVATIONS
        for k in KINDS
        for c in all_claims(conv)
        if cell(a, k, c).status == PROVED
    ]
    covered = [n for n in counts if n > 0]
    return (
        f"Generated coverage: {len(covered)} of {len(counts)} proved cells (all conventions) have premise-satisfying "
        f"generated cases, {min(covered)}–{max(covered)} each of {CASES_PER_CELL} drawn."
    )


def render() -> str:
    out = [
        "# Verdict tables: Lemmas 1–3 and Theorem 1 of the paper, per activation, domain kind and gradient convention",
        "",
        LEGEND.format(n=CASES_PER_CELL),
        "",
    ]
    for convention in CONVENTIONS:
        letter, title = CONVENTION_TITLES[convention]
        out += [f"## Under {title}", ""]
        for i, notion in enumerate(NOTIONS, start=1):
            out += [f"### Table {letter}{i}: Theorem 1 with {NOTION_TITLES[notion]} ({convention})", ""]
            out += theorem_table(notion, convention) + [""]
        out += (
            [
                f"### Table {letter}4: Lemma 1 (s = 0 ⇒ h = 0 on all of D) and Lemma 3 (∇ₓh = 0 on D ⇒ h constant on "
                "D) "
                f"({convention})",
                "",
            ]
            + lemma_table(convention)
            + [""]
        )
        if convention == CONVENTIONS[0]:
            out += lemma3_arguments() + ["## Table D: the cells where the conventions differ", ""]
            out += convention_differences_table() + [""]
    mechanisms = Counter(c.id.split("/")[0] for c in neuron_catalogue())
    out += ["## Table 5: layer-level counterexamples (assumptions, floating point, the literal Eq. 17)", ""]
    out += catalogue_table() + [""]
    out += ["## Table 6: one neuron counterexample per mechanism (all are in `theory/counterexamples.py`)", ""]
    out += neuron_examples_table() + [""]
    ivt = [c for c in neuron_catalogue() if c.by_ivt]
    out += [", ".join(f"`{c.id}`" for c in ivt) + ": " + ivt[0].why.split("; ", 1)[1] + ".", ""]
    out += [
        "Neuron counterexamples by mechanism: " + ", ".join(f"`{m}` × {k}" for m, k in sorted(mechanisms.items())),
        "",
    ]
    out += [coverage_summary(), ""]
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
