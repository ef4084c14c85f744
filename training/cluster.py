"""Running as one process of a TensorFlow cluster: one ps task (holds the shared variables) and N
worker tasks, on TF's own distributed runtime (ClusterSpec, Server, device strings, a shared queue).

Where the cluster comes from (``load``): a JSON file ``{"ps": ["host:port"], "worker": [...]}`` given
with ``--cluster FILE --job-name {ps,worker} --task-index I``, or the ``TF_CONFIG`` environment
variable ``{"cluster": {...}, "task": {"type": ..., "index": ...}}``. When both are present they must
agree (same cluster; same task where both name one): a silent preference would let a stale
``TF_CONFIG`` start a process in the wrong cluster.

How the processes meet and part:

- a worker calls ``wait_for_ps`` after ``start_server``; it raises ClusterError after a timeout instead
  of hanging while the ps is not up (TF itself waits for ever);
- workers run their sessions with ``session_config``, whose device filters keep them talking to the ps
  and themselves only, so a dead worker does not stall the others; the chief (worker 0) initialises
  or restores the variables on the ps, the other workers open their session with ``wait_for_chief``;
- the ps calls ``serve_until_done`` instead of ``server.join()`` (which never returns): it returns once
  every worker has sent "done" through ``WorkerSignals``, and raises ClusterError when no worker has
  sent anything for ``idle_timeout`` seconds (a worker that died and was not restarted). Workers send
  "alive" as they train (rate-limited) and "done" after their last use of the ps (final checkpoint
  and evaluation included), then exit.

The signals go through a FIFOQueue on the ps found by its ``shared_name``: each process builds the
same queue op in its own graph and TF resolves them to the one queue held by the ps server.
"""
import json
import os
import re
import time

from tfcompat import tf

JOBS = ("ps", "worker")
_ADDRESS = re.compile(r"^[^\s:/]+:(\d+)$")  # host:port, the form tf.train.ClusterSpec takes
_SIGNAL_QUEUE = "cluster_signals"  # shared_name of the queue on the ps
_SIGNAL_CAPACITY = 10000  # pending signals; the ps drains them as they come, so never reached
_POLL = 0.1  # seconds between a waiting worker's checks that the chief has initialised the variables


class ClusterError(Exception):
    """A cluster that cannot be set up or was abandoned; the message is one line for the user."""


class Cluster(object):
    """This process's place in the cluster: ``spec`` ({"ps": [address], "worker": [addresses]}),
    ``job_name`` ("ps" or "worker") and ``task_index``."""

    def __init__(self, spec, job_name, task_index):
        self.spec, self.job_name, self.task_index = spec, job_name, task_index

    def __repr__(self):
        return "Cluster(%r, %r, %d)" % (self.spec, self.job_name, self.task_index)

    @property
    def num_workers(self):
        return len(self.spec["worker"])

    @property
    def is_chief(self):
        """Worker 0 initialises the variables and writes checkpoints and summaries."""
        return self.job_name == "worker" and self.task_index == 0

    @property
    def device(self):
        """This task's device prefix, e.g. "/job:worker/task:1"."""
        return "/job:%s/task:%d" % (self.job_name, self.task_index)

    @property
    def ps_device(self):
        return "/job:ps/task:0"

    @property
    def address(self):
        """This task's "host:port"."""
        return self.spec[self.job_name][self.task_index]

    @property
    def ps_address(self):
        return self.spec["ps"][0]

    def cluster_spec(self):
        return tf.train.ClusterSpec(self.spec)


def load(cluster_path, job_name, task_index, environ=os.environ):
    """Return the Cluster described by the flags and/or ``TF_CONFIG`` in ``environ``, or None when
    neither names a cluster (a single-process run). ClusterError for anything incomplete or wrong."""
    if (job_name is None) != (task_index is None):
        raise ClusterError("--job-name and --task-index go together: give both or neither")
    flag_task = None if job_name is None else (job_name, task_index)
    file_spec = None if cluster_path is None else _validate_spec(_read_json_file(cluster_path), cluster_path)
    env_spec, env_task = _parse_tf_config(environ.get("TF_CONFIG", ""))
    if file_spec is not None and env_spec is not None and file_spec != env_spec:
        raise ClusterError("--cluster %s and TF_CONFIG describe different clusters; give one of them"
                           % cluster_path)
    if flag_task is not None and env_task is not None and flag_task != env_task:
        raise ClusterError("--job-name %s --task-index %s disagree with TF_CONFIG's task %s %s"
                           % (flag_task + env_task))
    spec = file_spec if file_spec is not None else env_spec
    task = flag_task if flag_task is not None else env_task
    if spec is None:
        if task is not None:
            raise ClusterError("--job-name and --task-index need --cluster FILE (or TF_CONFIG)")
        return None
    if task is None:
        raise ClusterError("no task for this process: give --job-name and --task-index")
    return Cluster(spec, *_validate_task(spec, *task))


def _read_json_file(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise ClusterError("cannot read cluster file %s: %s" % (path, e.strerror)) from None
    except ValueError as e:
        raise ClusterError("cluster file %s is not valid JSON: %s" % (path, e)) from None


def _parse_tf_config(text):
    """Return (spec or None, (job, index) or None) from the text of TF_CONFIG ("" when unset)."""
    if not text.strip():
        return None, None
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ClusterError("TF_CONFIG is not valid JSON: %s" % e) from None
    if not isinstance(config, dict) or "cluster" not in config:
        raise ClusterError('TF_CONFIG must be an object with a "cluster" entry')
    spec = _validate_spec(config["cluster"], "TF_CONFIG")
    task = config.get("task")
    if task is None:
        return spec, None
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterError('TF_CONFIG\'s "task" must be {"type": "ps" or "worker", "index": N}')
    return spec, (task["type"], task["index"])


def _validate_spec(spec, source):
    """Return ``spec`` as {"ps": [address], "worker": [addresses]} or raise ClusterError naming ``source``."""
    if not isinstance(spec, dict):
        raise ClusterError('%s: the cluster must be an object {"ps": [...], "worker": [...]}' % source)
    unknown = sorted(set(spec) - set(JOBS))
    if unknown:
        raise ClusterError("%s: unknown job %s (only ps and worker)" % (source, ", ".join(unknown)))
    for job in JOBS:
        if not isinstance(spec.get(job), list) or not spec[job]:
            raise ClusterError('%s: no %s job (a non-empty list of "host:port")' % (source, job))
    if len(spec["ps"]) != 1:
        raise ClusterError("%s: exactly one ps task is supported, got %d" % (source, len(spec["ps"])))
    addresses = spec["ps"] + spec["worker"]
    for address in addresses:
        match = _ADDRESS.match(address) if isinstance(address, str) else None
        if not match or not 0 < int(match.group(1)) < 65536:
            raise ClusterError('%s: bad address %r (expected "host:port")' % (source, address))
    duplicates = sorted(a for a in set(addresses) if addresses.count(a) > 1)
    if duplicates:
        raise ClusterError("%s: address %s is given to more than one task" % (source, duplicates[0]))
    return {job: list(spec[job]) for job in JOBS}


def _validate_task(spec, job_name, task_index):
    if job_name not in JOBS:
        raise ClusterError("unknown job name %r (expected ps or worker)" % (job_name,))
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise ClusterError("task index %r is not an integer" % (task_index,))
    if not 0 <= task_index < len(spec[job_name]):
        raise ClusterError("task index %d out of range: job %s has %d task(s)"
                           % (task_index, job_name, len(spec[job_name])))
    return job_name, task_index


def start_server(cfg):
    """Start and return this task's tf.train.Server; ClusterError when its port cannot be bound.

    The server listens on every interface (0.0.0.0) at the port of this task's address. The ps holds
    only variables: it sees no GPU, so that it takes no GPU memory from a worker on the same host."""
    config = tf.ConfigProto(device_count={"GPU": 0}) if cfg.job_name == "ps" else None
    try:
        return tf.train.Server(cfg.cluster_spec(), job_name=cfg.job_name, task_index=cfg.task_index,
                               config=config)
    except tf.errors.OpError as e:
        port = cfg.address.rsplit(":", 1)[1]
        raise ClusterError("cannot start %s task %d on %s (%s): is port %s taken?"
                           % (cfg.job_name, cfg.task_index, cfg.address, e.message, port)) from None


def session_config(cfg, config=None):
    """Return a copy of ``config`` (a ConfigProto, default empty) whose device filters limit this task's
    sessions to the ps and itself: sessions then neither wait for nor depend on the other workers."""
    out = tf.ConfigProto()
    if config is not None:
        out.CopyFrom(config)
    del out.device_filters[:]
    out.device_filters.extend([cfg.ps_device, cfg.device])
    return out


def wait_for_chief(cfg, server, timeout, config=None):
    """Open a worker's session (``session_config(cfg, config)``) once the chief has initialised every
    variable placed on the ps; ClusterError after ``timeout`` seconds. Return the session.

    Why not MonitoredTrainingSession: its non-chief checks readiness every 30 s (not settable), so a
    worker that starts a moment before the chief idles for 30 s. Variables on this worker's own device
    are not waited for: the chief never initialises them; the caller does, after this returns. Call it
    before the graph is finalized (it adds the readiness op).
    """
    on_ps = [v for v in tf.global_variables() if tf.DeviceSpec.from_string(v.device).job == "ps"]
    not_ready = tf.report_uninitialized_variables(on_ps)
    deadline = time.time() + timeout
    sess = tf.Session(server.target, config=session_config(cfg, config))
    while sess.run(not_ready).size:
        if time.time() > deadline:
            sess.close()
            raise ClusterError("worker %d: the chief (worker 0 at %s) has not initialised the variables "
                               "within %g s" % (cfg.task_index, cfg.spec["worker"][0], timeout))
        time.sleep(_POLL)
    return sess


def _bounded_config(cfg, timeout):
    """``session_config`` whose calls give up after ``timeout`` seconds. The client talks to its own
    server's master over gRPC: the in-process shortcut ignores the deadline while TF looks for the ps."""
    config = session_config(cfg)
    config.operation_timeout_in_ms = int(timeout * 1000)
    config.rpc_options.use_rpc_for_inprocess_master = True
    return config


def _signal_queue(cfg):
    """The queue of (worker index, done?) signals on the ps; the same op in every process's graph."""
    with tf.device(cfg.ps_device):
        return tf.FIFOQueue(_SIGNAL_CAPACITY, [tf.int32, tf.bool], shapes=[[], []],
                            shared_name=_SIGNAL_QUEUE, name=_SIGNAL_QUEUE)


def wait_for_ps(cfg, server, timeout):
    """Return once the ps task answers this task's server; ClusterError after ``timeout`` seconds."""
    with tf.Graph().as_default():
        size = _signal_queue(cfg).size()
        try:
            with tf.Session(server.target, config=_bounded_config(cfg, timeout)) as sess:
                sess.run(size)
        except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError):
            raise ClusterError("cannot reach ps task 0 at %s within %g s: is it started, and is the "
                               "address right?" % (cfg.ps_address, timeout)) from None


class WorkerSignals(object):
    """A worker's line to ``serve_until_done`` on the ps, in a graph and session of its own (so it can
    be used before and after the training session): ``alive()`` after each step, ``done()`` at the end.

    ``interval``: at most one "alive" per that many seconds reaches the ps; ``timeout``: seconds one
    signal may take before ClusterError (the ps is gone or stuck).
    """

    def __init__(self, cfg, server, interval=10.0, timeout=60.0):
        self._cfg, self._interval, self._timeout = cfg, interval, timeout
        self._last = None
        graph = tf.Graph()
        with graph.as_default():
            queue = _signal_queue(cfg)
            self._alive = queue.enqueue([cfg.task_index, False])
            self._done = queue.enqueue([cfg.task_index, True])
        self._sess = tf.Session(server.target, graph=graph, config=_bounded_config(cfg, timeout))

    def _send(self, op, what):
        try:
            self._sess.run(op)
        except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError, tf.errors.CancelledError):
            raise ClusterError("worker %d could not tell ps task 0 at %s that it is %s within %g s"
                               % (self._cfg.task_index, self._cfg.ps_address, what, self._timeout)) from None
        self._last = time.time()

    def alive(self):
        """Tell the ps this worker is making progress, unless that was said less than ``interval`` ago."""
        if self._last is None or time.time() - self._last >= self._interval:
            self._send(self._alive, "alive")

    def done(self):
        """Tell the ps this worker will not use it again."""
        self._send(self._done, "done")

    def close(self):
        self._sess.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def serve_until_done(cfg, server, idle_timeout):
    """Serve the ps variables until every worker has sent "done"; return then.

    A restarted worker may say "done" again: each worker counts once. ClusterError when no signal at all
    has come for ``idle_timeout`` seconds: the workers still missing are dead or stuck, and a ps that
    waited for them for ever would hold the cluster's ports and hide the failure.
    """
    idle = tf.RunOptions(timeout_in_ms=int(idle_timeout * 1000))
    with tf.Graph().as_default():
        signal = _signal_queue(cfg).dequeue()
        with tf.Session(server.target, config=session_config(cfg)) as sess:
            done = set()
            while len(done) < cfg.num_workers:
                try:
                    worker, finished = sess.run(signal, options=idle)
                except tf.errors.DeadlineExceededError:
                    missing = sorted(set(range(cfg.num_workers)) - done)
                    raise ClusterError("ps: no word from any worker for %g s; worker(s) %s never finished"
                                       % (idle_timeout, ", ".join(map(str, missing)))) from None
                if finished:
                    done.add(int(worker))
