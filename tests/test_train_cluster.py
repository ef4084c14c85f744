"""train.py as a real TF cluster on 127.0.0.1: one ps and two workers running Parle with
LeNet on Fashion-MNIST-shaped records; worker 1 is killed mid-run and restarted. Every process must
end by itself: each has a hard time limit, so a hang fails the test instead of stalling CI."""
import json
import signal
import time

import numpy as np
import pytest

import train_fixtures as fx
from config import config_train
from tfcompat import tf
from training import cluster, exits, graph, settings
from training.dataset import record_info

LIMIT = 240  # seconds any one process may take on a busy 2-core machine (they take ~10-30 s)
RUN = ["-opt", "parle", "-L", "2", "--set", "esgd_learning_rate=0.25", "--set", "eval_every=2",
       "--set", "checkpoint_every=2", "--max-steps", "18", "-n", "c"]


@pytest.fixture
def cluster_file(tmp_path):
    ps, w0, w1 = fx.free_ports(3)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"ps": ["127.0.0.1:%d" % ps], "worker": ["127.0.0.1:%d" % w0, "127.0.0.1:%d" % w1]}))
    return path


@pytest.fixture
def start(tmp_path, data_dir, cluster_file, train_process):
    """start(job, index, *extra flags): one train.py process of the cluster (killed at the end if still running)."""
    def start_task(job, index, *extra):
        return train_process(fx.TINY + fx.common_args(tmp_path, data_dir) + RUN + [
            "--cluster", str(cluster_file), "--job-name", job, "--task-index", str(index),
            "--cluster-timeout", "60", "--ps-idle-timeout", "60", *extra])

    return start_task


def wait_for_steps(proc, n, deadline):
    """Read ``proc``'s stderr until it has printed ``n`` step lines."""
    seen = 0
    while seen < n and time.time() < deadline:
        line = proc.stderr.readline()
        assert line, "the process ended before training: %s" % proc.stderr.read()
        seen += line.startswith("step ")


def finish(proc):
    out, err = proc.communicate(timeout=LIMIT)
    return proc.returncode, err


def test_ps_and_two_workers_train_parle_and_survive_a_worker_restart(tmp_path, start):
    ps, chief, worker = start("ps", 0), start("worker", 0), start("worker", 1)
    # worker 1 trains a few steps, then is killed (SIGKILL: no chance to say goodbye) and restarted
    wait_for_steps(worker, 2, time.time() + LIMIT)
    worker.kill()
    worker.communicate(timeout=LIMIT)
    restarted = start("worker", 1)
    chief_status, chief_err = finish(chief)
    worker_status, worker_err = finish(restarted)
    ps_status, ps_err = finish(ps)
    assert chief_status == exits.DONE, chief_err
    assert worker_status == exits.DONE, worker_err
    assert ps_status == exits.DONE and "every worker is done" in ps_err, ps_err
    assert "final test accuracy" in chief_err
    assert "worker 1: training replica 1 of 2 from step" in worker_err
    assert "step " in worker_err.split("training replica")[1]  # the restarted worker trained too
    # the chief wrote the checkpoints: the reference x̄ and the global step live there, not the replicas
    run = tmp_path / "ckpt" / "c"
    first, last = (fx.checkpoint_values(str(run / ("model-%d" % k))) for k in (12, 18))  # keep_checkpoints=2
    assert int(last["global_step"]) == 18
    assert not any(k.startswith("replica_") for k in last)
    moved = max(np.abs(last[k] - first[k]).max() for k in last if k.startswith("model/") and "kernel" in k)
    assert moved > 1e-4
    assert all(np.isfinite(v).all() for v in last.values())
    assert json.loads((run / "settings.json").read_text())["replicas"] == 2
    events = fx.scalar_events(str(tmp_path / "tb" / "c" / "test"))
    assert all(np.isfinite(v) for _, v in events["loss"])


def test_when_the_chief_stops_the_other_worker_and_the_ps_end_with_a_message(start):
    """The chief is stopped (SIGTERM: it saves and exits): worker 1 gives up once the chief's step has not
    moved for --ps-idle-timeout seconds, tells the ps, and the ps ends."""
    # The workers' limit is short; the ps's is longer than the gap between two heartbeats (10 s plus a
    # step) can be on a loaded machine, so that the ps hears worker 1 give up rather than timing out.
    ps = start("ps", 0, "--ps-idle-timeout", "90")
    idle = ["--ps-idle-timeout", "20", "--max-steps", "100000"]
    chief, worker = start("worker", 0, *idle), start("worker", 1, *idle)
    wait_for_steps(chief, 2, time.time() + LIMIT)
    chief.send_signal(signal.SIGTERM)
    chief_status, _ = finish(chief)
    worker_status, worker_err = finish(worker)
    ps_status, ps_err = finish(ps)
    assert chief_status == exits.TERMINATED
    assert worker_status == exits.FAILED and "the chief's step has stayed at" in worker_err, worker_err
    assert ps_status == exits.DONE and "every worker is done" in ps_err, ps_err


def test_a_replica_started_from_the_reference_continues_the_runs_scoping(data_dir):
    """A cluster worker's replica (and its scoping counter k) lives on the worker, outside the chief's
    checkpoint: starting it from x̄ sets k to the run's global step, so gamma and rho continue; the
    worker's local variables (what a joining worker initialises) are all on the worker, none on the ps."""
    ps_port, worker_port = fx.free_ports(2)
    spec = {"ps": ["127.0.0.1:%d" % ps_port], "worker": ["127.0.0.1:%d" % worker_port]}
    tf.train.Server(tf.train.ClusterSpec(spec), job_name="ps", task_index=0)
    cfg = cluster.Cluster(spec, "worker", 0)
    server = cluster.start_server(cfg)
    record_dir = str(data_dir / "fashion-mnist")
    s = settings.parse_settings(fx.TINY + ["--data-dir", str(data_dir), "-opt", "parle", "-L", "2",
                                           "--set", "g1=0.5", "--set", "rho_scoping=0.25"], config_train)
    with tf.Graph().as_default():
        g = graph.build(s, record_info(record_dir), record_dir, cfg)
        local = tf.local_variables()
        assert local and all(tf.DeviceSpec.from_string(v.device).job == "worker" for v in local), local
        with tf.Session(server.target, config=cluster.session_config(cfg)) as sess:
            sess.run(g.init)
            sess.run(g.global_step.assign(5))
            sess.run(g.sync_replicas)
            sess.run(g.train_init, {g.start_batch: 5 * g.per_step})  # the stats are built after a batch is read
            gamma, rho = sess.run([g.fetches["gamma"], g.fetches["rho"]])
    np.testing.assert_allclose([gamma, rho], [s.g0 * 1.5 ** 5, s.rho * 1.25 ** 5], rtol=1e-6)
