"""Event files written with known values, as train.py writes them: for tests of what reads them."""
import os

from tfcompat import tf

T0 = 1000.0  # wall time of each run's first event


def write_event_file(folder, records):
    """Write an event file: a file_version event at T0, then ``records`` (step, wall time, payload) where the
    payload is {tag: value} (a scalar summary) or "START" (the SessionLog train.py writes on resume)."""
    os.makedirs(folder, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(folder, "events.out.tfevents.%d.test" % T0)) as w:
        w.write(tf.Event(wall_time=T0, file_version="brain.Event:2").SerializeToString())
        for step, wall, payload in records:
            if payload == "START":
                event = tf.Event(wall_time=wall, step=step, session_log=tf.SessionLog(status=tf.SessionLog.START))
            else:
                value = [tf.Summary.Value(tag=k, simple_value=v) for k, v in payload.items()]
                event = tf.Event(wall_time=wall, step=step, summary=tf.Summary(value=value))
            w.write(event.SerializeToString())


def write_run(root, name, epochs_per_step, secs_per_step, train, test, orphans=None, restart=None):
    """Write runs/NAME/{train,test}: ``train`` {step: loss}, ``test`` {step: error}; ``orphans``
    (train {step: (loss, epoch)}, test {step: error}) are written before a START at step ``restart``."""
    def train_record(step, loss, epoch):
        return step, T0 + secs_per_step * step, {"loss": loss, "effective_epoch": epoch, "accuracy": 0.5}

    def test_record(step, error):
        return step, T0 + secs_per_step * step, {"error": error, "loss": 1.0, "accuracy": 1 - error}

    tr = [train_record(s, v, s * epochs_per_step) for s, v in sorted(train.items()) if restart is None or s < restart]
    te = [test_record(s, v) for s, v in sorted(test.items()) if restart is None or s < restart]
    if orphans is not None:
        tr += [train_record(s, loss, epoch) for s, (loss, epoch) in sorted(orphans[0].items())]
        te += [test_record(s, v) for s, v in sorted(orphans[1].items())]
        start = (restart, T0 + secs_per_step * restart, "START")
        tr.append(start)
        te.append(start)
        tr += [train_record(s, v, s * epochs_per_step) for s, v in sorted(train.items()) if s >= restart]
        te += [test_record(s, v) for s, v in sorted(test.items()) if s >= restart]
    write_event_file(os.path.join(root, name, "train"), tr)
    write_event_file(os.path.join(root, name, "test"), te)
