"""The training program's pieces. ``train.py`` reads the flags (``settings``) and hands the rest to ``run``.

- a process's run: ``run`` (ps, cluster worker or single process; lock, data, start checks),
  ``run_folders``, ``sessions`` (the chief's and the other workers' sessions), ``restore``, ``loop``
  (the outer steps), ``evaluation``, ``exits`` (the exit statuses), ``stop``, ``console``;
- the TF graph, built apart from sessions and files: ``graph`` (the TrainingGraph), the step of each mode
  (``model_step``, ``parle_replicas``, their contract ``train_step``), ``placement``, ``towers``,
  ``streams``, ``evaluation_graph``, ``bn``, ``optimizer_args``, ``schedule``, ``devices``;
- files: ``checkpoints``, ``checkpoint_files``, ``events``, ``lock``, ``atomic_file``; a cluster's runtime:
  ``cluster``.

``evaluate.py`` uses the same pieces for a checkpoint's test metrics.
"""
