"""Agreement between annotators on the rows more than one of them labelled.

Cohen's kappa for each pair (scikit-learn) and Krippendorff's alpha (nominal) for all of them.
Each annotator's latest decision on a row is their label for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import cohen_kappa_score

from tunesmith.annotate.store import Decision


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    rows: int
    """Rows both labelled."""
    observed: float | None
    """Share of those rows on which they chose the same label."""
    kappa: float | None
    """Cohen's kappa; None when undefined (no shared rows, or one label used throughout)."""


@dataclass(frozen=True)
class Agreement:
    annotators: list[str]
    rows: int
    """Rows labelled by at least two annotators."""
    alpha: float | None
    """Krippendorff's alpha (nominal) over those rows; None when undefined."""
    pairs: list[PairAgreement] = field(default_factory=list)


def agreement(decisions: Iterable[Decision]) -> Agreement:
    labels: dict[int, dict[str, str]] = {}  # row -> annotator -> their latest label
    for decision in sorted(decisions, key=lambda d: d.id):
        labels.setdefault(decision.row, {})[decision.annotator] = decision.label
    annotators = sorted({name for row in labels.values() for name in row})
    shared = [row for row in labels.values() if len(row) >= 2]
    pairs = []
    for first, second in itertools.combinations(annotators, 2):
        both = [(row[first], row[second]) for row in shared if first in row and second in row]
        a, b = [x for x, _ in both], [y for _, y in both]
        pairs.append(
            PairAgreement(
                first,
                second,
                rows=len(both),
                observed=float(np.mean([x == y for x, y in both])) if both else None,
                kappa=cohen_kappa(a, b),
            )
        )
    units = [[row.get(name) for name in annotators] for row in shared]
    return Agreement(annotators, len(shared), krippendorff_alpha_nominal(units), pairs)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two annotators' labels on the same rows; None when it is undefined
    (no rows, or both used one and the same label throughout: chance agreement is then 1)."""
    if not a or len(set(a) | set(b)) < 2:
        return None
    return float(cohen_kappa_score(a, b))


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha for nominal data: 1 - observed / expected disagreement.

    `units[u][c]` is the value coder c gave unit u, None where c gave none. Follows
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": units with fewer than
    two values are not pairable and are dropped; the coincidence matrix o[c, k] counts, over
    units, the ordered pairs of values (c, k) from different coders, each unit weighted by
    1 / (m_u - 1) for its m_u values. Then n_c = sum_k o[c, k], n = sum_c n_c and
    alpha = 1 - (n - 1) * sum_{c != k} o[c, k] / sum_{c != k} n_c * n_k.
    None when undefined: no pairable unit, or a single value used throughout.
    """
    values = sorted({v for unit in units for v in unit if v is not None}, key=repr)
    index = {value: i for i, value in enumerate(values)}
    counts = np.zeros((len(units), len(values)))  # (units, values): how often each value
    for u, unit in enumerate(units):
        for value in unit:
            if value is not None:
                counts[u, index[value]] += 1
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if len(counts) == 0:
        return None
    # o = sum_u (N_u N_u^T - diag(N_u)) / (m_u - 1), with N_u the counts of unit u: (V, V)
    weighted = counts / (m - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = coincidence.sum() - np.trace(coincidence)
    expected = (n**2 - (n_c**2).sum()) / (n - 1)
    if expected == 0:
        return None
    return float(1.0 - observed / expected)
