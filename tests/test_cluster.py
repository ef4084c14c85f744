"""training.cluster: the cluster description (flags, file, TF_CONFIG) and its errors, and real loopback
clusters of processes (tests/cluster_fixtures.py) that must share variables on the ps and end by
themselves within a bound: all done, worker restarted, ps missing, worker missing."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import train_fixtures as fx
from tfcompat import tf
from training import cluster

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster_fixtures.py")
SPEC = {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223", "127.0.0.1:2224"]}
BOUND = 60  # seconds any cluster process may live: a hang fails the test instead of stalling the suite


def write_json(path, value):
    path.write_text(json.dumps(value))
    return str(path)


def tf_config(spec=SPEC, task=None):
    config = {"cluster": spec}
    if task is not None:
        config["task"] = task
    return {"TF_CONFIG": json.dumps(config)}


def test_file_and_flags_give_the_task(tmp_path):
    cfg = cluster.load(write_json(tmp_path / "c.json", SPEC), "worker", 1, environ={})
    assert (cfg.spec, cfg.job_name, cfg.task_index) == (SPEC, "worker", 1)
    assert (cfg.num_workers, cfg.is_chief, cfg.address) == (2, False, "127.0.0.1:2224")
    assert (cfg.device, cfg.ps_device) == ("/job:worker/task:1", "/job:ps/task:0")
    assert cfg.cluster_spec().as_dict() == SPEC
    assert cluster.load(write_json(tmp_path / "c.json", SPEC), "worker", 0, environ={}).is_chief
    assert not cluster.load(write_json(tmp_path / "c.json", SPEC), "ps", 0, environ={}).is_chief


def test_tf_config_alone_and_agreeing_with_the_flags(tmp_path):
    env = tf_config(task={"type": "ps", "index": 0})
    cfg = cluster.load(None, None, None, environ=env)
    assert (cfg.spec, cfg.job_name, cfg.task_index) == (SPEC, "ps", 0)
    same = cluster.load(write_json(tmp_path / "c.json", SPEC), "ps", 0, environ=env)
    assert (same.spec, same.job_name, same.task_index) == (SPEC, "ps", 0)
    # TF_CONFIG without a task: the flags name it.
    cfg = cluster.load(None, "worker", 1, environ=tf_config())
    assert (cfg.job_name, cfg.task_index) == ("worker", 1)


def test_no_cluster_anywhere_is_a_single_process_run():
    assert cluster.load(None, None, None, environ={}) is None
    assert cluster.load(None, None, None, environ={"TF_CONFIG": "  "}) is None


@pytest.mark.parametrize("spec, job, index, env, message", [
    (None, "worker", None, {}, "--job-name and --task-index go together"),
    (None, None, 0, {}, "--job-name and --task-index go together"),
    (None, "worker", 0, {}, "need --cluster FILE"),
    (SPEC, None, None, {}, "no task for this process"),
    (SPEC, "chief", 0, {}, "unknown job name 'chief'"),
    (SPEC, "worker", 2, {}, "task index 2 out of range: job worker has 2 task(s)"),
    (SPEC, "ps", 1, {}, "task index 1 out of range: job ps has 1 task(s)"),
    (SPEC, "worker", -1, {}, "task index -1 out of range"),
    ({"worker": SPEC["worker"]}, "worker", 0, {}, "no ps job"),
    ({"ps": SPEC["ps"], "worker": []}, "worker", 0, {}, "no worker job"),
    ({"ps": SPEC["ps"], "worker": "127.0.0.1:2223"}, "worker", 0, {}, "no worker job"),
    (dict(SPEC, chief=["127.0.0.1:2225"]), "worker", 0, {}, "unknown job chief"),
    (dict(SPEC, ps=["127.0.0.1:1", "127.0.0.1:2"]), "worker", 0, {}, "exactly one ps task is supported, got 2"),
    (dict(SPEC, worker=["127.0.0.1"]), "worker", 0, {}, "bad address '127.0.0.1'"),
    (dict(SPEC, worker=["127.0.0.1:70000"]), "worker", 0, {}, "bad address '127.0.0.1:70000'"),
    (dict(SPEC, worker=[2223]), "worker", 0, {}, "bad address 2223"),
    (dict(SPEC, worker=["127.0.0.1:2222"]), "worker", 0, {}, "address 127.0.0.1:2222 is given to more than one task"),
    (["127.0.0.1:2222"], "worker", 0, {}, "the cluster must be an object"),
    (SPEC, "worker", 0, tf_config(dict(SPEC, worker=SPEC["worker"][:1])), "describe different clusters"),
    (SPEC, "worker", 0, tf_config(task={"type": "worker", "index": 1}), "disagree with TF_CONFIG's task worker 1"),
    (None, None, None, tf_config(task={"type": "worker"}), 'TF_CONFIG\'s "task" must be'),
    (None, None, None, tf_config(task={"type": "worker", "index": "1"}), "task index '1' is not an integer"),
    (None, None, None, tf_config(spec={"ps": SPEC["ps"]}), "TF_CONFIG: no worker job"),
    (None, None, None, {"TF_CONFIG": '{"task": {"type": "ps", "index": 0}}'}, 'a "cluster" entry'),
    (None, None, None, {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
])
def test_bad_descriptions_are_one_line_errors(tmp_path, spec, job, index, env, message):
    path = None if spec is None else write_json(tmp_path / "c.json", spec)
    with pytest.raises(cluster.ClusterError) as info:
        cluster.load(path, job, index, environ=env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unreadable_or_invalid_cluster_file(tmp_path):
    with pytest.raises(cluster.ClusterError, match="cannot read cluster file .*missing.json"):
        cluster.load(str(tmp_path / "missing.json"), "ps", 0, environ={})
    (tmp_path / "bad.json").write_text('{"ps": [')
    with pytest.raises(cluster.ClusterError, match="cluster file .*bad.json is not valid JSON"):
        cluster.load(str(tmp_path / "bad.json"), "ps", 0, environ={})


def test_session_config_keeps_the_base_and_filters_to_ps_and_self():
    cfg = cluster.Cluster(SPEC, "worker", 1)
    base = tf.ConfigProto(allow_soft_placement=True, device_filters=["/job:worker/task:0"])
    config = cluster.session_config(cfg, base)
    assert list(config.device_filters) == ["/job:ps/task:0", "/job:worker/task:1"]
    assert config.allow_soft_placement
    assert list(base.device_filters) == ["/job:worker/task:0"]  # the base is not modified


def test_start_server_names_the_address_whose_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        address = "127.0.0.1:%d" % port
        cfg = cluster.Cluster({"ps": [address], "worker": ["127.0.0.1:%d" % fx.free_ports(1)[0]]}, "ps", 0)
        expected = "cannot start ps task 0 on %s .*is port %d taken" % (address, port)
        with pytest.raises(cluster.ClusterError, match=expected):
            cluster.start_server(cfg)


class Processes(object):
    """Cluster processes of one test, each with its output in a file; all killed at the end."""

    def __init__(self, tmp_path, spec):
        self.tmp_path = tmp_path
        self.cluster_file = write_json(tmp_path / "cluster.json", spec)
        self.env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        self.procs = []

    def start(self, job, index, adds=0, timeout=10, after_input=False):
        out = (self.tmp_path / ("%s%d-%d.out" % (job, index, len(self.procs)))).open("w+")
        args = [self.cluster_file, job, str(index), str(adds), str(timeout)] + ["--after-input"] * after_input
        proc = subprocess.Popen([sys.executable, FIXTURE] + args, stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, env=self.env, text=True)
        proc.out = out
        self.procs.append(proc)
        return proc

    def output(self, proc):
        proc.out.seek(0)
        return proc.out.read()

    def wait_for_line(self, proc, line, timeout=BOUND):
        deadline = time.time() + timeout
        while line not in self.output(proc).splitlines():
            assert time.time() < deadline and proc.poll() is None, self.output(proc)
            time.sleep(0.05)

    def finish(self, proc, deadline):
        """Wait for ``proc`` to end by ``deadline`` (time.time()); return (exit status, output)."""
        try:
            status = proc.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pytest.fail("a cluster process did not end by itself:\n" + self.output(proc))
        return status, self.output(proc)

    def kill_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.out.close()


@pytest.fixture
def processes(tmp_path):
    ports = fx.free_ports(3)
    procs = Processes(tmp_path, {"ps": ["127.0.0.1:%d" % ports[0]],
                                 "worker": ["127.0.0.1:%d" % p for p in ports[1:]]})
    yield procs
    procs.kill_all()


def test_workers_share_the_ps_variable_and_every_process_ends(processes):
    deadline = time.time() + BOUND
    ps = processes.start("ps", 0, timeout=BOUND)
    workers = [processes.start("worker", i, adds=5, timeout=BOUND) for i in (1, 0)]
    for proc in workers:
        status, out = processes.finish(proc, deadline)
        assert status == 0, out
        # Each worker saw the other's adds: one variable on the ps, not one per process.
        assert "sees [5, 5]" in out, out
    status, out = processes.finish(ps, deadline)
    assert (status, out.splitlines()[-1]) == (0, "ps done"), out


def test_a_killed_worker_restarts_and_continues_from_the_ps_state(processes):
    deadline = time.time() + BOUND
    ps = processes.start("ps", 0, timeout=BOUND)
    chief = processes.start("worker", 0, adds=40, timeout=BOUND)
    first = processes.start("worker", 1, adds=40, timeout=BOUND)
    again = processes.start("worker", 1, adds=40, timeout=BOUND, after_input=True)
    processes.wait_for_line(first, "worker 1 added 3")
    first.send_signal(signal.SIGKILL)
    first.wait()
    again.stdin.write("go\n")  # its server takes the port the killed worker held
    again.stdin.flush()
    for proc in (again, chief):
        status, out = processes.finish(proc, deadline)
        assert status == 0 and "sees [40, 40]" in out, out
    # The restarted worker went on from its count on the ps; it did not start again from 0.
    counts = [int(line.split()[-1]) for line in processes.output(again).splitlines() if " added " in line]
    assert counts and counts[0] > 3 and counts[-1] == 40
    assert processes.finish(ps, deadline)[0] == 0


def test_a_worker_without_its_ps_exits_with_a_message_after_the_timeout(processes):
    start = time.time()
    worker = processes.start("worker", 1, adds=1, timeout=3)
    status, out = processes.finish(worker, start + BOUND)
    assert status == 1, out
    ps_address = json.loads(open(processes.cluster_file).read())["ps"][0]
    assert "error: cannot reach ps task 0 at %s within 3 s" % ps_address in out
    assert time.time() - start < BOUND


def test_a_ps_whose_workers_never_come_gives_up_after_the_idle_timeout(processes):
    start = time.time()
    ps = processes.start("ps", 0, timeout=2)
    status, out = processes.finish(ps, start + BOUND)
    assert status == 1, out
    assert "error: ps: no word from any worker for 2 s; worker(s) 0, 1 never finished" in out


def test_a_worker_whose_chief_never_comes_exits_with_a_message_after_the_timeout(processes):
    start = time.time()
    processes.start("ps", 0, timeout=BOUND)
    worker = processes.start("worker", 1, adds=1, timeout=3)
    status, out = processes.finish(worker, start + BOUND)
    assert status == 1, out
    chief_address = json.loads(open(processes.cluster_file).read())["worker"][0]
    assert "error: worker 1: the chief (worker 0 at %s) has not initialised the variables within 3 s" \
        % chief_address in out
