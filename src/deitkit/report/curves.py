"""Which classes get ROC and precision-recall curves: those with both outcomes, worst first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

# More curves than this on one axes are a tangle no one can read (and tab10 has 10 colours).
MAX_CURVES = 10


@dataclass(frozen=True)
class CurveChoice:
    """The classes drawn and those left out.

    Attributes:
        drawn: Class indices to draw, in label order.
        capped: True when there were more drawable classes than `MAX_CURVES`; `drawn` then holds
            those with the lowest ROC AUC (ties: lowest average precision).
        drawable: How many classes had both positives and negatives.
        skipped: Class indices with no positive or no negative example (no curve exists).
    """

    drawn: tuple[int, ...]
    capped: bool
    drawable: int
    skipped: tuple[int, ...]


def choose(true_bin: np.ndarray, probs: np.ndarray, *, cap: int = MAX_CURVES) -> CurveChoice:
    """Pick the classes of (N, C) `true_bin` and `probs` whose curves are drawn."""
    positives = true_bin.sum(axis=0)
    valid = (positives > 0) & (positives < len(true_bin))
    candidates = np.flatnonzero(valid)
    skipped = tuple(int(i) for i in np.flatnonzero(~valid))
    if len(candidates) <= cap:
        return CurveChoice(tuple(int(i) for i in candidates), False, len(candidates), skipped)
    auc = [roc_auc_score(true_bin[:, i], probs[:, i]) for i in candidates]
    ap = [average_precision_score(true_bin[:, i], probs[:, i]) for i in candidates]
    worst = sorted(range(len(candidates)), key=lambda k: (auc[k], ap[k], candidates[k]))[:cap]
    drawn = tuple(sorted(int(candidates[k]) for k in worst))
    return CurveChoice(drawn, True, len(candidates), skipped)


def caption(choice: CurveChoice, labels: Sequence[str], *, max_names: int = 20) -> str:
    """A plain-text caption saying what was drawn and naming the skipped classes."""
    parts = []
    if choice.capped:
        parts.append(
            f"Showing the {len(choice.drawn)} of {choice.drawable} labels with the lowest ROC AUC."
        )
    elif choice.drawn:
        parts.append(f"All {len(choice.drawn)} labels with positive and negative examples.")
    if choice.skipped:
        names = [labels[i] for i in choice.skipped[:max_names]]
        more = len(choice.skipped) - len(names)
        listed = ", ".join(names) + (f" and {more} more" if more else "")
        parts.append(f"Skipped (no positive or no negative example, so no curve): {listed}.")
    return " ".join(parts)
