"""bench.turns.rotations: every variant once per round, each one first and each one last equally often."""
import collections

from bench.turns import rotations


def test_every_round_has_every_variant_and_each_takes_every_place():
    rounds = list(rotations("abcd", 8))
    assert len(rounds) == 8
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert collections.Counter(r[0] for r in rounds) == {v: 2 for v in "abcd"}
    assert collections.Counter(r[-1] for r in rounds) == {v: 2 for v in "abcd"}
