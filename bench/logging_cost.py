"""What TensorBoard logging costs the training loop: the time of one write of the train scalars.

    .venv/bin/python -m bench.bench_train_logging [--writes 5000]

The loop fetches the scalars with the train op (no extra session.run), so a write is all that logging
adds to a step; compare it with a step's time (the progress line's img/s: the quick start's LeNet
Entropy-SGD L = 5 step takes about 0.5 s on 2 CPU cores).
"""
import argparse
import tempfile
import time


from training.events import Events

TAGS = ("loss", "accuracy", "learning_rate", "images_per_sec", "effective_epoch",
        "gamma", "inner_loss", "x_mu_norm", "x_xprime_norm")


def write_cost(folder, writes):
    """Return microseconds per write of the nine train scalars (one Summary proto, one event),
    the writers' close (final flush) included."""
    events = Events(folder)
    values = {tag: 0.5 for tag in TAGS}
    start = time.perf_counter()
    for step in range(writes):
        events.train_scalars(values, step)
    events.close()
    return (time.perf_counter() - start) / writes * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print("one write of the 9 train scalars: %.1f us (mean of %d)" % (write_cost(folder, args.writes),
                                                                        args.writes))


if __name__ == "__main__":
    main()
