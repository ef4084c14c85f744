"""The compat module gives a working TF 1.x graph API on the installed TensorFlow 2.x."""
import numpy as np

from tfcompat import tf


def test_graph_and_session_compute_a_known_number():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([[5.0], [6.0]], dtype=np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [2, 2])
        y = tf.matmul(x, tf.constant(b)) + 1.0
        with tf.Session() as sess:
            out = sess.run(y, feed_dict={x: a})
    np.testing.assert_allclose(out, [[18.0], [40.0]])


def test_v1_behaviour_is_on():
    assert not tf.executing_eagerly()
    with tf.Graph().as_default():
        v = tf.get_variable("v", shape=[], initializer=tf.zeros_initializer())
        # resource variables: reads and writes ordered by control dependencies
        assert "Resource" in type(v).__name__


def test_tensorflow_log_noise_is_quiet(tmp_path):
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-c", "from tfcompat import tf\nwith tf.Session() as s: print(s.run(tf.constant(1)))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert "deprecated" not in out.stderr
    assert "cuda" not in out.stderr.lower()
