"""The model registry: ``get_model(name)`` for the names in ``MODEL_NAMES``.

Every model is a function ``model_fn(images, is_training, num_classes, config) -> logits``:
``images`` float32 NHWC, ``is_training`` a Python bool (batch norm from the batch, with moving-average
updates, or from the moving statistics), ``config`` any object with ``wrn_depth``, ``wrn_width``,
``dropout``, ``data_format`` and ``precision``. Dropout follows ``is_training`` unless ``use_dropout``
says otherwise: batch-norm re-estimation runs batch norm in training mode with dropout off, as the
authors do. Dropout draws its masks statelessly from ``dropout_key`` (int, shape [2]), which a model with
dropout on needs: the training stream gives one per batch (``data.pipeline.train_dataset(with_key=True)``),
so the masks are a function of the run's seed, the batch's position in the stream and the layer, and a
resumed run continues exactly. Its variables live under ``tf.variable_scope("model",
reuse=tf.AUTO_REUSE)``, so every call in one graph (training, evaluation, the optimizer's Langevin loop)
shares the same weights.

``config.precision`` (``layers.PRECISIONS``) picks the dtype the model computes in: the images are cast
to it on entry and the logits back to float32 on exit, while every variable stays float32 (see
models/layers.py), so fp32, bf16 and fp16 runs share checkpoints.

``MODEL_NAMES`` is read without loading TensorFlow (train.py checks ``-m`` before it loads it): the
models' code (models.model_fns) loads with the first ``get_model``.
"""
MODEL_NAMES = ("wrn", "allcnn", "lenet", "mnistfc")


def get_model(name):
    """Return the ``model_fn`` of model ``name``; a ValueError listing the known names otherwise."""
    if name not in MODEL_NAMES:
        raise ValueError("unknown model %r; known models: %s" % (name, ", ".join(MODEL_NAMES)))
    from models.model_fns import model_fn_of  # TensorFlow loads here, not when the names are read
    return model_fn_of(name)
