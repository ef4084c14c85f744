"""Train a model with Entropy-SGD, Parle, SGD, momentum or Adam: ``python3 train.py -h`` lists the flags.

Defaults are ``config.config_train``; checkpoints go to ``checkpoints/NAME/``, TensorBoard events to
``tensorboard/NAME/{train,test}``. Stop with Ctrl-C, SIGTERM or SIGHUP (a final checkpoint is saved)
and continue with ``-rl`` (same flags). Exit status (training.exits): 0 done, 1 error, 2 bad flags, 3 NaN
or infinite loss or weights, 130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP after saving.

One process per run: both folders are locked while it runs (training.lock). Every start first puts
right what a killed save left in the checkpoint folder (training.checkpoint_files.tidy); a start without
-rl is refused where any checkpoint is, intact or not; -rl resumes from the newest save that restores.
The run itself is training.run's; this file reads the flags, which is why TensorFlow is loaded only
after them: ``-h`` and a bad flag answer at once.
"""
from config import config_train
from training import settings, stop
from training.console import PROG


def main(argv=None):
    """Run train.py with ``argv``; return the process exit status.

    Ctrl-C, SIGTERM or SIGHUP before the stop handler is installed (data preparation, graph building,
    restoring), or a second one during training, ends here: one line, status 130, 143 or 129, the
    checkpoints already saved.
    """
    def train():
        s = settings.parse_settings(argv, config_train)
        from training.run import run  # loads TensorFlow: only once the flags are read
        return run(s)
    return stop.run_stoppable(train, "%s: interrupted; checkpoints saved before now are kept" % PROG)


if __name__ == "__main__":
    stop.end_process(main())
