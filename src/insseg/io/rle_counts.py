"""COCO RLE counts checked without decoding: pycocotools' ``decode`` writes past its buffer when the counts add
up to more than height x width, so a file's RLEs are checked here first, all of them in one vectorised pass."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# pycocotools' compressed counts: 6-bit groups offset by 48 ('0'); 0x20 = more groups follow, 0x10 = sign.
_MAX_GROUPS = 7  # 35 bits: far beyond any image's pixel count, well inside int64


def compressed_counts_ok(counts: Sequence[str | bytes], pixels: Sequence[int]) -> np.ndarray:
    """bool per RLE: do the compressed ``counts`` strings parse to non-negative runs adding up to ``pixels``?

    The same decoding as pycocotools' ``rleFrString`` (delta coding of runs 3 on against the run two before),
    done for all strings at once with numpy so that a file of a million detections checks in seconds.
    """
    n = len(counts)
    if n == 0:
        return np.zeros(0, dtype=bool)
    raw = [c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in counts]
    lengths = np.fromiter((len(r) for r in raw), dtype=np.int64, count=n)
    ok = lengths > 0
    c = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(np.int64) - 48
    entry = np.repeat(np.arange(n), lengths)
    bad_char = (c < 0) | (c > 63)
    ok &= np.bincount(entry, weights=bad_char, minlength=n) == 0
    more = (c & 0x20) != 0
    ends = np.cumsum(lengths) - 1
    ok &= _last_ok(more, ends, lengths)
    if not ok.any():
        return ok
    # Tokens: runs of bytes ending at a byte without the 'more' bit (an entry's last byte always ends one).
    token_end = ~more
    token_end[ends[lengths > 0]] = True
    token_id = np.concatenate([[0], np.cumsum(token_end)[:-1]])
    starts = np.flatnonzero(np.concatenate([[True], token_end[:-1]]))
    k = np.arange(c.size) - starts[token_id]
    too_long = np.zeros(n, dtype=bool)
    np.logical_or.at(too_long, entry, k >= _MAX_GROUPS)
    ok &= ~too_long
    k = np.minimum(k, _MAX_GROUPS - 1)
    value = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    last = np.flatnonzero(token_end)
    negative = (c[last] & 0x10) != 0
    value = value - np.where(negative, 1 << (5 * (k[last] + 1)), 0)
    return ok & _runs_ok(value, entry[last], n, np.asarray(pixels, dtype=np.int64))


def _last_ok(more: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(lengths.size, dtype=bool)
    nonempty = lengths > 0
    out[nonempty] = ~more[ends[nonempty]]
    return out


def _runs_ok(value: np.ndarray, token_entry: np.ndarray, n: int, pixels: np.ndarray) -> np.ndarray:
    """Undo the delta coding (run m += run m - 2 for m > 2) per entry, then check the runs."""
    first = np.concatenate([[0], np.flatnonzero(np.diff(token_entry)) + 1])
    m = np.arange(value.size) - np.repeat(first, np.diff(np.concatenate([first, [value.size]])))
    runs = value.copy()
    for parity in (0, 1):
        chain = (m % 2 == parity) & (m >= (2 if parity == 0 else 1))
        idx = np.flatnonzero(chain)
        if idx.size == 0:
            continue
        sums = np.cumsum(value[idx])
        group = token_entry[idx]
        group_start = np.concatenate([[True], group[1:] != group[:-1]])
        offset = np.maximum.accumulate(np.where(group_start, np.arange(idx.size), 0))
        before = np.concatenate([[0], sums])[offset]
        runs[idx] = sums - before
    negative = np.zeros(n, dtype=bool)
    np.logical_or.at(negative, token_entry, runs < 0)
    total = np.bincount(token_entry, weights=runs.astype(np.float64), minlength=n)
    return ~negative & (total == pixels)


def uncompressed_counts_ok(counts: Sequence[object], pixels: int) -> bool:
    """A list of non-negative integer runs adding up to ``pixels``."""
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in counts):
        return False
    return sum(counts) == pixels  # type: ignore[arg-type]
