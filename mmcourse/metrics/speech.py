"""Word and character error rates of transcripts, by Levenshtein edit distance.

    edit_distance(h, r) = fewest substitutions + deletions + insertions turning hypothesis h into reference r
    WER = sum over utterances of edit_distance(words of h, words of r) / total number of reference words
    CER = the same over characters (spaces included, as torchmetrics counts them)

Both are corpus-level ratios (total edits / total reference length), not the mean of per-utterance rates,
and can exceed 1 when the hypotheses insert many words. An empty hypothesis is fine (every reference word
is a deletion: WER 1); an empty reference is an error (its error rate is undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["edit_distance", "word_error_rate", "char_error_rate"]


def edit_distance(hypothesis: Sequence, reference: Sequence) -> int:
    """Levenshtein distance between two sequences (of words, characters or token ids): O(len h · len r) work,
    one vectorised row of the dynamic programme per hypothesis token.

    Row i holds the distances from the first i hypothesis tokens to every reference prefix; a match or
    substitution and a deletion come from row i - 1, an insertion from the cell to the left, whose chain
    min_k (cell_k + j - k) is a running minimum."""
    for name, seq in (("hypothesis", hypothesis), ("reference", reference)):
        if not hasattr(seq, "__len__"):
            raise TypeError(f"{name}: expected a sequence (of words, characters or ids), got {type(seq).__name__}")
    ids: dict = {}
    h = np.array([ids.setdefault(t, len(ids)) for t in hypothesis], dtype=np.int64)
    r = np.array([ids.setdefault(t, len(ids)) for t in reference], dtype=np.int64)
    offsets = np.arange(len(r) + 1)
    previous = offsets.copy()  # distances from the empty hypothesis prefix
    for i, token in enumerate(h, start=1):
        from_above = np.minimum(previous[:-1] + (r != token), previous[1:] + 1)  # substitute / match, delete
        current = np.concatenate(([i], from_above))
        previous = np.minimum.accumulate(current - offsets) + offsets  # insert: from the left, + 1 per step
    return int(previous[-1])


def word_error_rate(hypotheses: list, references: list) -> float:
    """Corpus WER. Each item is a string (split on whitespace) or a sequence of tokens (e.g. word ids)."""
    return _error_rate(hypotheses, references, _words, (str, list, tuple))


def char_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus CER over the characters of each string, spaces included."""
    return _error_rate(hypotheses, references, list, (str,))


def _words(transcript) -> list:
    return transcript.split() if isinstance(transcript, str) else list(transcript)


def _error_rate(hypotheses, references, split, kinds: tuple[type, ...]) -> float:
    for name, items in (("hypotheses", hypotheses), ("references", references)):
        if not isinstance(items, list):
            raise TypeError(f"{name}: expected a list of transcripts, got {type(items).__name__}")
        bad = [type(t).__name__ for t in items if not isinstance(t, kinds)]
        if bad:
            raise TypeError(f"{name}: expected transcripts ({' or '.join(k.__name__ for k in kinds)}), got {bad[0]}")
    if not references:
        raise ValueError("references: expected at least one transcript, got an empty list")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references: expected the same number of transcripts, "
            f"got {len(hypotheses)} and {len(references)}"
        )
    edits = total = 0
    for i, (hyp, ref) in enumerate(zip(hypotheses, references, strict=True)):
        ref_tokens = split(ref)
        if not ref_tokens:
            raise ValueError(f"references[{i}]: is empty; the error rate of an empty reference is undefined")
        edits += edit_distance(split(hyp), ref_tokens)
        total += len(ref_tokens)
    return edits / total
