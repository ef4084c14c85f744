"""bench/parle.py: its --smoke run prints a row per mode with positive finite numbers, and its byte
count of a traced step matches the transfers of a graph built here."""
import math


from bench import parle as bench
from tfcompat import tf


def test_transfer_bytes_counts_every_crossing_inside_a_loop():
    n, iterations = 1000, 5
    config = tf.ConfigProto(allow_soft_placement=True)
    config.device_count["CPU"] = 2
    with tf.Graph().as_default(), tf.Session(config=config) as sess:
        with tf.device("/cpu:0"):
            v = tf.get_variable("v", [n], initializer=tf.ones_initializer())

        def body(i, acc):
            with tf.device("/cpu:1"):  # the loop's state stays on cpu:0, where the loop was built
                return i + 1, acc + v * 2.0

        _, out = tf.while_loop(lambda i, acc: i < iterations, body, [tf.constant(0), tf.zeros([n])])
        with tf.device("/cpu:0"):
            total = tf.reduce_sum(out)
        sess.run(v.initializer)
        metadata = tf.RunMetadata()
        sess.run(total, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE, output_partition_graphs=True),
                 run_metadata=metadata)
    sent, integer = bench.transfer_bytes(metadata)
    floats = 3 * iterations * n * 4  # each iteration: v and acc to cpu:1, their sum back
    # beyond the floats only the loop's own int32 counter and bool condition cross, a few bytes a turn
    assert floats <= sent <= floats + 16 * iterations
    assert integer <= 8 * iterations


def test_smoke_prints_a_row_per_mode_with_positive_finite_numbers(capsys):
    assert bench.main(["--smoke"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    weights = int(lines[0].split("weights: ")[1].split()[0])
    rows = {fields[0]: fields[1:] for fields in (line.split() for line in lines[2:])}
    assert sorted(rows) == sorted(bench.MODES)
    L = 2  # --smoke's Langevin steps, on 2 devices
    for mode, (devices, seconds, evals, sent, input_part, per_eval) in rows.items():
        assert int(devices) == 2
        assert 0 < float(seconds) < math.inf
        assert int(evals) == (2 if mode == "momentum" else 2 * L)
        assert 0 < int(input_part) < int(sent)
        assert float(per_eval) == round(int(sent) / int(evals))
    # a momentum step sends at least the weights to the second tower and their gradients back
    assert int(rows["momentum"][3]) >= 2 * weights
