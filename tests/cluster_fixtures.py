"""One process of a loopback test cluster (tests/test_cluster.py starts several of these).

    python tests/cluster_fixtures.py CLUSTER_JSON JOB INDEX ADDS TIMEOUT [--after-input]

The ps serves until both workers are done (``serve_until_done`` with idle timeout TIMEOUT). Worker I
builds the same graph as every worker: a vector ``tallies`` on the ps, one entry per worker; it adds 1
to ``tallies[I]`` until that entry reaches ADDS (starting from the entry's value, so a restarted worker
continues where it was killed), printing "worker I added K" after each add; then it waits until every
entry is ADDS, prints "worker I sees [...]" and signals done. Worker 0 (the chief) initialises the
variables; the others wait for that (``wait_for_chief``). ClusterError -> its message on stderr,
exit status 1. With --after-input the process starts its server only after reading a line on stdin:
a test can have a replacement worker load TensorFlow while the worker it replaces still runs.
"""
import sys
import time


from tfcompat import tf
from training import cluster

PAUSE = 0.05  # seconds between adds, so that a test can kill a worker in the middle


def run_worker(cfg, server, adds, timeout):
    cluster.wait_for_ps(cfg, server, timeout)
    with tf.device(cfg.ps_device):
        tallies = tf.get_variable("tallies", [cfg.num_workers], tf.int64, tf.zeros_initializer())
    add = tf.scatter_add(tallies, [cfg.task_index], tf.constant([1], tf.int64))
    if cfg.is_chief:
        sess = tf.Session(server.target, config=cluster.session_config(cfg))
        sess.run(tf.global_variables_initializer())
    else:
        sess = cluster.wait_for_chief(cfg, server, timeout)
    with cluster.WorkerSignals(cfg, server, interval=0.0, timeout=timeout) as signals:
        with sess:
            while sess.run(tallies)[cfg.task_index] < adds:
                print("worker %d added %d" % (cfg.task_index, sess.run(add)[cfg.task_index]), flush=True)
                signals.alive()
                time.sleep(PAUSE)
            while min(sess.run(tallies)) < adds:
                time.sleep(PAUSE)
            print("worker %d sees %s" % (cfg.task_index, sess.run(tallies).tolist()), flush=True)
        signals.done()  # after the last use of the ps: the ps may exit at once


def main(argv):
    path, job, index, adds, timeout = argv[:5]
    if argv[5:] == ["--after-input"]:
        sys.stdin.readline()
    try:
        cfg = cluster.load(path, job, int(index))
        server = cluster.start_server(cfg)
        if cfg.job_name == "ps":
            cluster.serve_until_done(cfg, server, float(timeout))
            print("ps done", flush=True)
        else:
            run_worker(cfg, server, int(adds), float(timeout))
    except cluster.ClusterError as e:
        print("error: %s" % e, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
