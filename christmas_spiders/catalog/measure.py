"""Pairwise precision, recall and F1 of a linking against the truth.

Every pair of listings is a decision: linked (same predicted ornament) or not. Precision is
the share of linked pairs that are truly one ornament, recall the share of true pairs that
were linked. Counted from the contingency table of (predicted, true) labels, so it stays
linear in the number of listings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairScores:
    predicted_pairs: int  # pairs the linker put in one ornament
    true_pairs: int  # pairs that are one ornament
    correct_pairs: int  # both

    @property
    def precision(self) -> float:
        """1.0 when no pair was linked: nothing wrong was claimed."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """1.0 when there was no pair to find."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def _pairs(counts: Counter) -> int:
    return sum(count * (count - 1) // 2 for count in counts.values())


def pairwise_scores(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> PairScores:
    """Scores of `predicted[i]` (an ornament key per listing) against `truth[i]`."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} true labels")
    return PairScores(
        predicted_pairs=_pairs(Counter(predicted)),
        true_pairs=_pairs(Counter(truth)),
        correct_pairs=_pairs(Counter(zip(predicted, truth, strict=True))),
    )
