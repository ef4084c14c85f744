"""Where the training graph lives: in one process, or on a cluster worker with its variables on the ps.

``placement(cluster)`` picks one of two placements with the same methods, so the graph's builders ask
where things go instead of testing which kind of run this is.
"""
import contextlib
import typing

from tfcompat import tf
from training.devices import local_devices


class LocalPlacement(object):
    """One process: TF places the ops; towers and Parle replicas name their local devices."""

    cluster = None

    def graph_scope(self):
        """The device scope of the whole graph: none."""
        return contextlib.nullcontext()

    def scratch_scope(self):
        """The device scope of this process's scratch state (the BN re-estimation's sums): none."""
        return contextlib.nullcontext()

    def replica_devices(self, replicas):
        """The Parle replicas this process builds, as (index, device): all ``replicas``, one per local device."""
        return list(enumerate(local_devices(replicas)))

    def finish(self):
        """Called once the graph is built: nothing to do."""


class WorkerPlacement(object):
    """A cluster worker (``cluster``: its training.cluster.Cluster): variables on the ps, every op on
    this worker, except where a narrower scope says otherwise."""

    def __init__(self, cluster):
        self.cluster = cluster

    def graph_scope(self):
        """TF's replica_device_setter: variables on the ps, the other ops on this worker."""
        return tf.device(tf.train.replica_device_setter(cluster=self.cluster.cluster_spec(),
                                                        worker_device=self.cluster.device))

    def scratch_scope(self):
        """This worker's device: on the ps, a worker (re)joining would re-initialise the scratch state
        (the BN re-estimation's sums) under the chief's pass."""
        return tf.device(self.cluster.device)

    def replica_devices(self, replicas):
        """The one Parle replica this worker builds, as [(index, device)]: its task index, its device."""
        return [(self.cluster.task_index, self.cluster.device)]

    def finish(self):
        """Move the variables on this worker's own device (its replica, their slots) from the global to
        the local collection. The chief initialises and saves only global variables (those on the ps);
        each worker initialises its local ones itself and starts its replica from x̄."""
        global_vars = tf.get_collection_ref(tf.GraphKeys.GLOBAL_VARIABLES)
        local = [v for v in global_vars if tf.DeviceSpec.from_string(v.device).job == "worker"]
        global_vars[:] = [v for v in global_vars if v not in set(local)]
        for v in local:
            tf.add_to_collection(tf.GraphKeys.LOCAL_VARIABLES, v)


Placement = typing.Union[LocalPlacement, WorkerPlacement]


def placement(cluster):
    """The placement of this process: a WorkerPlacement for a cluster worker, else a LocalPlacement."""
    return LocalPlacement() if cluster is None else WorkerPlacement(cluster)
