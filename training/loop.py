"""The session loops: outer steps, logging, evaluation, checkpoints, NaN stop and stop signals.

Two loops share one step (``OuterStep``): the ``Trainer`` of a single process or a cluster's chief,
which evaluates and saves, and ``run_worker`` for a cluster's other workers, which only train their
replica. Both return one of training.exits' statuses: DONE; DIVERGED when the loss or the weights
became NaN or infinite (nothing saved after the last good checkpoint: the weights are checked before
every save); FAILED when a file of the run could not be written (a full disk: when it was an event
file, a checkpoint of the step reached is saved first) or TensorFlow failed (out of memory, damaged
records: the step reached is saved where the model holds a whole step); INTERRUPTED, TERMINATED or
HUNG_UP after a stop signal, once the final checkpoint is saved. A stop signal during the last step or
its evaluation lets the run end as DONE: it is complete, and a script reading the status should not take
it for a stopped one.

A step due for both is saved before it is evaluated, so an evaluation that fails costs no training. The
evaluation can change the model's state (batch-norm re-estimation at x), so a run
resumed from a step where one was due evaluates there again before its first step: it then continues
from the state an uninterrupted run has. The final checkpoint is written again after the final
evaluation when that changed the state, so that it holds the statistics its evaluation used.
"""
import contextlib
import dataclasses
import time

from tfcompat import first_line, tf
from training import evaluation, exits, schedule
from training.cluster import ClusterError
from training.errors import WriteFailed
from training.stop import run_aside

WRITE_ADVICE = "Free some space (or fix the folder), then continue with -rl."


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """The step counts of a run, from its settings and dataset (``plan``)."""
    total: int  # the outer step the run trains to
    eval_every: int  # outer steps between evaluations
    checkpoint_every: int  # outer steps between periodic checkpoints
    per_epoch: float  # outer steps per effective epoch
    batch: int  # examples per minibatch (schedule.examples_per_batch)
    per_step: int  # minibatches per outer step
    train_size: int  # examples in the training split

    def epoch(self, step):
        """Effective epoch after ``step`` outer steps."""
        return schedule.effective_epoch(step, self.batch, self.per_step, self.train_size)


def plan(s, train_size, per_step):
    """Return the StepPlan of settings ``s`` on a training split of ``train_size`` examples."""
    batch = schedule.examples_per_batch(s)
    total = schedule.steps_for_epochs(s.epochs, batch, per_step, train_size)
    if s.max_steps is not None:
        total = min(total, s.max_steps)
    return StepPlan(total=total,
                    eval_every=schedule.every_steps(s.eval_every, batch, per_step, train_size),
                    checkpoint_every=schedule.every_steps(s.checkpoint_every, batch, per_step, train_size),
                    per_epoch=train_size / float(batch * per_step),
                    batch=batch, per_step=per_step, train_size=train_size)


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What one outer step returned."""
    values: dict  # the logged scalars (the graph's ``fetches``), by name
    extras: dict  # the other tensors the step was asked for, by name
    started: float  # time.time() when the step began
    seconds: float  # how long its session.run took

    @property
    def finite(self):
        """Whether every logged scalar is finite."""
        return evaluation.is_finite(*self.values.values())


class OuterStep(object):
    """Runs one outer step in ``sess``: the graph's ``train_op`` with its logged scalars and the tensors
    named in ``extras``; then calls ``heartbeat`` (a cluster worker tells the ps it is alive)."""

    def __init__(self, sess, g, heartbeat=None, **extras):
        self._sess = sess
        self._fetches = {"train": g.train_op, "values": g.fetches, "extras": extras}
        self._heartbeat = heartbeat or (lambda: None)

    def stop_fetching(self, name):
        """Leave the extra ``name`` out of the following steps."""
        del self._fetches["extras"][name]

    def __call__(self):
        """Run the step; return its StepResult."""
        started = time.time()
        out = run_aside(self._sess.run, self._fetches)  # a stop signal is heard during a long step too
        seconds = time.time() - started
        self._heartbeat()
        return StepResult(out["values"], out["extras"], started, seconds)


class Trainer(object):
    """Runs the outer steps of one session from its current global step to ``steps.total``, evaluating
    and saving as planned.

    ``g``: the TrainingGraph; ``s``: settings; ``checkpoints``: the run's training.checkpoints.Checkpoints;
    ``steps``: its StepPlan; ``events``, ``progress``, ``stop``: the run's TensorBoard writers, progress
    reporter and stop request; ``heartbeat``: called after every step (a cluster worker tells the ps it
    is alive).
    """

    def __init__(self, sess, g, s, checkpoints, steps, events, progress, stop, heartbeat=None):
        self.sess, self.g, self.s = sess, g, s
        self.checkpoints, self.steps = checkpoints, steps
        self.events, self.progress, self.stop = events, progress, stop
        self.heartbeat = heartbeat
        self.best = float(sess.run(g.best_accuracy))
        self.last_eval = None

    def run(self):
        """Train until the planned total; returns the exit status (see the module docstring)."""
        self.step = self.first_step = int(self.sess.run(self.g.global_step))
        self.changing = None  # what is rewriting the model's state in parts, if anything (``_changing_state``)
        try:
            return self._train()
        except WriteFailed as e:  # after an event file, the checkpoint folder may still take a save
            return self._failed(str(e), WRITE_ADVICE, save=e.what != "checkpoint")
        except tf.errors.UnavailableError:  # a cluster's ps lost: nothing could be saved (training.run says so)
            raise
        except tf.errors.OpError as e:
            return self._tensorflow_failed(e)

    def _tensorflow_failed(self, e):
        """Report TensorFlow's error ``e`` (out of memory, damaged records, a failed kernel) in one line;
        returns FAILED. The step reached is saved when the model holds a whole state: the error came
        outside ``_changing_state`` (the test split's evaluation, a summary), or it is damaged records
        that a step of one minibatch on one stream reads before it writes anything. Within a step of
        several minibatches the variables may hold a Langevin iterate x' (Entropy-SGD, Parle), Parle's
        replicas may have stepped while another one's read failed, an error in another op of a step may
        leave some variables updated and others not, and the batch-norm pass zeroes the statistics first:
        nothing is saved then."""
        damaged = isinstance(e, tf.errors.DataLossError)
        read_first = self.changing == "step" and self.g.per_step == 1 and self.s.optimizer != "parle"
        whole = self.changing is None or (damaged and read_first)
        if damaged:  # read through at the start, so damaged on disk since
            return self._failed("the %s records under %s are damaged (%s)" % (self.s.dataset, self.s.data_dir,
                                                                           first_line(e)),
                                "Delete them (the next start converts them afresh), then continue with -rl.",
                                save=whole)
        advice = ("Free the device's memory and continue with -rl, or train on with a smaller batch_size as a "
                  "new run (-n NEW -r CHECKPOINT)." if isinstance(e, tf.errors.ResourceExhaustedError)
                  else "Continue with -rl once the cause is mended.")
        return self._failed("TensorFlow failed (%s)" % first_line(e), advice, save=whole)

    @contextlib.contextmanager
    def _changing_state(self, what):
        """Mark the block as ``what`` ("step", "batch-norm pass") rewriting the model's state in parts. Left
        set when the block raises: the state is then not whole, and ``_tensorflow_failed`` does not save it."""
        self.changing = what
        yield
        self.changing = None

    def _train(self):
        step = self.step
        self._start_streams(step)
        if 0 < step < self.steps.total and step % self.steps.eval_every == 0:
            self.events.restart_test(step)  # this evaluation replaces any the stopped run wrote at ``step``
            self._evaluate(step)
        # the first step's inputs, shown once in TensorBoard
        first_images = {"images": self.g.image_summary} if step == 0 else {}
        run_step = OuterStep(self.sess, self.g, self.heartbeat, **first_images)
        while step < self.steps.total:
            with self.progress.running_step(), self._changing_state("step"):
                result = run_step()
            step = self.step = step + 1
            if not result.finite:
                return self._diverged(step, "loss", result.values)
            if "images" in result.extras:
                self.events.train_summary(result.extras["images"], step)
                run_step.stop_fetching("images")
            status = self._after_step(step, result.seconds, result.values)
            if status is None and self.stop.requested and step < self.steps.total:  # the last: let it end
                status = self._stopped(step, result.values)
            if status is not None:
                return status
        self.progress.close()
        if self.last_eval is None or self.last_eval[0] != step:
            self._evaluate(step)
        if self.g.bn is not None:  # the final checkpoint holds the statistics its evaluation used
            self.checkpoints.save(self.sess, step, again=True)
        self.progress.line("final test accuracy %.4f (error %.2f%%) at step %d, effective epoch %.2f"
                           % (self.last_eval[2], 100.0 * (1.0 - self.last_eval[2]), step, self.steps.epoch(step)))
        return exits.DONE

    def _start_streams(self, step):
        """Initialise the training streams at the positions an uninterrupted run has reached at ``step``.

        The main stream has consumed ``per_step`` batches per outer step. The BN re-estimation stream
        is read once per periodic evaluation, so it is initialised once (one decode of the training
        split) at the evaluations done before step ``step``'s own, which ``_train`` runs again.
        """
        self.sess.run(self.g.train_init, {self.g.start_batch: step * self.g.per_step})
        if self.g.bn is not None:
            self.sess.run(self.g.bn.init, {self.g.bn.start_batch: schedule.bn_start_batch(
                step, self.steps.eval_every, self.s.bn_reestimate_batches)})

    def _after_step(self, step, seconds, values):
        """Progress, train summaries, and the checkpoints and evaluations due at ``step``.

        Returns None, or DIVERGED when a save was due but the weights are not finite (nothing saved).
        """
        epoch = self.steps.epoch(step)
        rate = self.progress.step_done(step, epoch, seconds, values)
        if step % self.s.log_every == 0:
            self.events.train_scalars(dict(values, images_per_sec=rate, effective_epoch=epoch), step)
        last = step == self.steps.total
        evaluate = step % self.steps.eval_every == 0 or last
        save = step % self.steps.checkpoint_every == 0 or last
        if (evaluate or save) and not self.sess.run(self.g.weights_finite):
            return self._diverged(step, "weights", values)
        if save:
            self.checkpoints.save(self.sess, step)
        if evaluate:
            self._evaluate(step)
        return None

    def _evaluate(self, step):
        """Evaluate at ``step``: summaries, the summary line, and a ``best`` checkpoint on a new best."""
        with self.progress.evaluating(step, self.s.bn_reestimate_batches if self.g.bn is not None else 0):
            if self.g.bn is not None:  # re-estimated at the weights evaluated first (training.bn)
                with self._changing_state("batch-norm pass"):
                    self.g.bn.run(self.sess, self.s.bn_reestimate_batches)
            loss, accuracy = evaluation.evaluate(self.sess, self.g.test)
        self.last_eval = (step, loss, accuracy)
        self.events.test_scalars({"loss": loss, "accuracy": accuracy, "error": 1.0 - accuracy}, step)
        if accuracy > self.best:
            self.best = accuracy
            self.sess.run(self.g.set_best, {self.g.best_value: accuracy})
            self.checkpoints.save_best(self.sess, step)
        self.progress.evaluation(step, self.steps.epoch(step), loss, accuracy, self.best)

    def _diverged(self, step, what, values):
        """Report that ``what`` (the loss, the weights) became NaN/inf at ``step``, without saving
        anything; returns DIVERGED."""
        self.progress.close()
        bad = ", ".join("%s=%s" % (k, v) for k, v in sorted(values.items()))
        latest = self.checkpoints.latest()
        self.progress.line(
            "error: the %s became NaN or infinite at step %d (%s). Training stopped; nothing was saved "
            "after the last good checkpoint (%s). Lower the learning rate or check the data, then restart "
            "or resume with -rl." % (what, step, bad, latest or "none yet"))
        return exits.DIVERGED

    def _failed(self, problem, advice, save):
        """Report ``problem`` at the step reached, after saving a checkpoint of it when ``save`` (and the
        weights are finite, and this process has trained a step); ``advice`` ends the line. Returns
        FAILED."""
        self.progress.close()
        saved = None
        if save and self.step > self.first_step and self.sess.run(self.g.weights_finite):
            try:
                saved = self.checkpoints.save(self.sess, self.step) or self.checkpoints.latest()
            except WriteFailed as e:
                problem, advice = str(e), WRITE_ADVICE
        outcome = ("saved %s" % saved if saved else
                   "the last checkpoint is %s" % (self.checkpoints.latest() or "none yet"))
        self.progress.line("error: %s at step %d; %s. %s" % (problem, self.step, outcome, advice))
        return exits.FAILED

    def _stopped(self, step, values):
        """Save the final checkpoint after a stop signal; returns INTERRUPTED, TERMINATED or HUNG_UP, or DIVERGED
        without saving when the weights are not finite."""
        self.progress.close()
        if not self.sess.run(self.g.weights_finite):
            return self._diverged(step, "weights", values)
        path = self.checkpoints.save(self.sess, step) or self.checkpoints.latest()
        self.progress.line("stopped by signal %d at step %d (effective epoch %.2f); saved %s. "
                           "Continue with -rl." % (self.stop.signal, step, self.steps.epoch(step), path))
        return exits.EXIT_STATUS[self.stop.signal]


def run_worker(sess, g, s, steps, progress, stop, heartbeat):
    """A non-chief cluster worker: train its replica until the chief's global step reaches
    ``steps.total``, or a stop signal. Nothing to save (its replica restarts from x̄). Returns the exit
    status.

    Raises ClusterError when the chief's step has not moved for ``s.ps_idle_timeout`` seconds: the chief
    stopped or died, and without it the run can neither end nor be saved."""
    step = int(sess.run(g.global_step))
    sess.run(g.train_init, {g.start_batch: step * g.per_step})
    run_step = OuterStep(sess, g, heartbeat, step=g.global_step)
    moved = time.time()
    while step < steps.total and not stop.requested:
        with progress.running_step():
            result = run_step()
        if int(result.extras["step"]) != step:
            moved = result.started
        elif result.started - moved > s.ps_idle_timeout:
            progress.close()
            raise ClusterError("the chief's step has stayed at %d for %.0f s (--ps-idle-timeout): it stopped; "
                               "start this worker again once the chief runs" % (step, result.started - moved))
        step = int(result.extras["step"])
        if not result.finite:
            progress.line("error: the loss became NaN or infinite at step %d (%s)" % (step, result.values))
            return exits.DIVERGED
        progress.step_done(step, steps.epoch(step), result.seconds, result.values)
    progress.close()
    # a stop during the last step lets the run end, as the chief's does
    return exits.EXIT_STATUS[stop.signal] if stop.requested and step < steps.total else exits.DONE
