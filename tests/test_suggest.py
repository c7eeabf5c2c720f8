"""``nearest_tags``: the quick-ratio prefilter must not change which tags are suggested.

The oracle is the plain rule written out (one ``SequenceMatcher.ratio`` per tag, no bounds), over
version-like, word-like and random tags: the suggestions must be the same, in the same order.
"""

from __future__ import annotations

import random
from difflib import SequenceMatcher

import pytest

from webhook.core.suggest import MIN_SIMILARITY, nearest_tags


def _oracle(wanted: str, tags: list[str], limit: int = 3) -> list[str]:
    """Words only (no version-like pair), ranked by similarity: the part the prefilter touches."""
    ranked = []
    for tag in tags:
        sim = SequenceMatcher(None, wanted.lower(), tag.lower()).ratio()
        if tag != wanted and sim >= MIN_SIMILARITY:
            ranked.append((-sim, tag))
    ranked.sort()
    return [t for _, t in ranked[:limit]]


WORDS = ["latest", "stable", "main", "master", "release", "nightly", "edge", "alpine", "slim", "dev"]


@pytest.mark.parametrize("seed", range(20))
def test_prefilter_keeps_the_suggestions_of_the_plain_rule(seed: int) -> None:
    rng = random.Random(seed)
    tags = sorted(
        {rng.choice(WORDS) + rng.choice(["", "-", "_"]) + rng.choice([*WORDS, ""]) for _ in range(300)}
        | {"".join(rng.choice("abcdefghij-_") for _ in range(rng.randint(1, 12))) for _ in range(300)}
    )
    wanted = rng.choice(WORDS)[:-1] + rng.choice("xyz")
    assert nearest_tags(wanted, tags) == _oracle(wanted, tags)


def test_version_tags_still_rank_by_shared_components_then_distance() -> None:
    tags = ["1.24.0", "1.25.2", "1.25.4", "1.26.0", "latest"]
    assert nearest_tags("1.25.3", tags) == ["1.25.4", "1.25.2", "1.26.0"]
