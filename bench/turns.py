"""Side-by-side timing for the benchmark scripts: the order in which variants take their turns."""


def rotations(variants, rounds):
    """Yield, for each of ``rounds`` rounds, every variant once, each round starting one variant later,
    so that no variant always runs first or always follows the same one (both bias a fixed order)."""
    variants = list(variants)
    for r in range(rounds):
        k = r % len(variants)
        yield variants[k:] + variants[:k]
