"""What one run of an op executes, read from TensorFlow's trace of it: for tests and benchmarks that check what
the graph runs (which ops, how many, on which device), independent of the kernels a CPU happens to use."""
from tfcompat import tf


def traced_ops(sess, op):
    """[(name, type, device)] of every op one traced run of ``op`` executes (an op run twice is there
    twice); the device as the trace names it ("/job:localhost/replica:0/task:0/device:GPU:0").

    An op of the graph is listed by its type there, whatever kernel ran it: the kernel library a CPU gets
    renames some (with oneDNN, Conv2D runs as _MklNativeConv2D), and no test or figure may depend on the
    CPU. An op that TensorFlow's own passes added (``_XlaRun``, ...) is listed by its traced type.
    """
    # The executor's own record of each op it ran: a full trace would add the GPU profiler's (CUPTI's)
    # kernel and copy streams, which nothing here reads and which a machine may fail to start.
    metadata = tf.RunMetadata()
    sess.run(op, options=tf.RunOptions(trace_level=tf.RunOptions.SOFTWARE_TRACE), run_metadata=metadata)
    graph_types = {o.name: o.type for o in sess.graph.get_operations()}
    return [(node.node_name,
             graph_types.get(node.node_name, node.timeline_label.partition(" = ")[2].partition("(")[0]),
             dev.device)
            for dev in metadata.step_stats.dev_stats for node in dev.node_stats]


def traced_op_types(sess, op):
    """The type of every op one traced run of ``op`` executes, in a list (``traced_ops``)."""
    return [op_type for _, op_type, _ in traced_ops(sess, op)]
