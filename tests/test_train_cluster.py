"""train.py as a real TF cluster on 127.0.0.1 (issue 11): one ps and two workers running Parle with
LeNet on Fashion-MNIST-shaped records; worker 1 is killed mid-run and restarted. Every process must
end by itself: each has a hard time limit, so a hang fails the test instead of stalling CI."""
import json
import time

import numpy as np
import pytest

import train_fixtures as fx

LIMIT = 240  # seconds any one process may take on a busy 2-core machine (they take ~10-30 s)
RUN = ["-opt", "parle", "-L", "2", "--set", "esgd_learning_rate=0.25", "--set", "eval_every=2",
       "--set", "checkpoint_every=2", "--max-steps", "18", "-n", "c"]


@pytest.fixture
def cluster_file(tmp_path):
    ps, w0, w1 = fx.free_ports(3)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"ps": ["127.0.0.1:%d" % ps], "worker": ["127.0.0.1:%d" % w0, "127.0.0.1:%d" % w1]}))
    return path


def start(tmp_path, data_dir, cluster_file, job, index):
    args = fx.TINY + fx.common_args(tmp_path, data_dir) + RUN + [
        "--cluster", str(cluster_file), "--job-name", job, "--task-index", str(index), "--cluster-timeout", "60",
        "--ps-idle-timeout", "60"]
    return fx.subprocess_train(args)


def finish(proc):
    out, err = proc.communicate(timeout=LIMIT)
    return proc.returncode, err


def test_ps_and_two_workers_train_parle_and_survive_a_worker_restart(tmp_path, cluster_file):
    data_dir = tmp_path / "data"
    fx.write_tiny_records(data_dir)
    ps = start(tmp_path, data_dir, cluster_file, "ps", 0)
    chief = start(tmp_path, data_dir, cluster_file, "worker", 0)
    worker = start(tmp_path, data_dir, cluster_file, "worker", 1)
    try:
        # worker 1 trains a few steps, then is killed (SIGKILL: no chance to say goodbye) and restarted
        deadline = time.time() + LIMIT
        steps_seen = 0
        while steps_seen < 2 and time.time() < deadline:
            line = worker.stderr.readline()
            assert line, "worker 1 ended before training: %s" % worker.stderr.read()
            steps_seen += line.startswith("step ")
        worker.kill()
        worker.communicate(timeout=LIMIT)
        restarted = start(tmp_path, data_dir, cluster_file, "worker", 1)
        chief_status, chief_err = finish(chief)
        worker_status, worker_err = finish(restarted)
        ps_status, ps_err = finish(ps)
    finally:
        for p in (ps, chief, worker):
            if p.poll() is None:
                p.kill()
    assert chief_status == 0, chief_err
    assert worker_status == 0, worker_err
    assert ps_status == 0 and "every worker is done" in ps_err, ps_err
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
