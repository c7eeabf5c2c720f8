"""“Did you mean 1.25.4?” — the nearest existing tags to a tag that does not exist.

A missing tag is the most common ``not-found``: a typo, a version not pushed yet, a ``v`` prefix.
Version-like tags are ranked by how many leading components they share with the wanted one and
then by numeric distance at the first difference (so ``1.25.3`` suggests ``1.25.4`` before
``1.24.0``); other tags by string similarity. Pure and bounded: registries can hold tens of
thousands of tags, and the caller caps how many it lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher

_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(.*)$")
MIN_SIMILARITY = 0.5


def _version(tag: str) -> tuple[tuple[int, ...], str] | None:
    m = _VERSION.match(tag)
    if m is None:
        return None
    return tuple(int(x) for x in m.group(1).split(".")), m.group(2)


def _rank(
    wanted: str, tag: str, matcher: SequenceMatcher[str]
) -> tuple[int, int, int, int, float, str] | None:
    """``matcher`` holds ``wanted.lower()`` as its first sequence (set once per listing)."""
    matcher.set_seq2(tag.lower())
    wv, tv = _version(wanted), _version(tag)
    if wv is not None and tv is not None and wv[1] == tv[1] and len(wv[0]) == len(tv[0]):
        sim = matcher.ratio()
        common = 0
        for a, b in zip(wv[0], tv[0], strict=True):
            if a != b:
                break
            common += 1
        if common == 0 and wv[0][0] != tv[0][0] and sim < MIN_SIMILARITY:
            return None
        dist = abs(wv[0][common] - tv[0][common]) if common < len(wv[0]) else 0
        newer = -tv[0][common] if common < len(tv[0]) else 0  # on a tie, the newer version first
        return (0, -common, dist, newer, -sim, tag)
    # Upper bounds of ratio() first (exact: a bound below the threshold means the ratio is too):
    # a listing holds up to 10,000 tags and each full ratio() costs ~20 us, which a stream of
    # missing tags turned into a busy event loop (bench/soak.py: 234 ms per missing tag -> 41 ms).
    if matcher.real_quick_ratio() < MIN_SIMILARITY or matcher.quick_ratio() < MIN_SIMILARITY:
        return None
    sim = matcher.ratio()
    if sim < MIN_SIMILARITY:
        return None
    return (1, 0, 0, 0, -sim, tag)


def nearest_tags(wanted: str, tags: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` existing tags closest to ``wanted`` (never ``wanted`` itself)."""
    ranked = []
    matcher: SequenceMatcher[str] = SequenceMatcher(None, wanted.lower(), "")
    for tag in tags:
        if tag == wanted:
            continue
        r = _rank(wanted, tag, matcher)
        if r is not None:
            ranked.append(r)
    ranked.sort()
    return [r[5] for r in ranked[:limit]]
