"""The training program's pieces: flags and settings, schedules, the graph, checkpoints, the session loop.

``train.py`` and ``evaluate.py`` are thin entry points over these modules. TF graph construction
(``graph``), session running (``loop``, ``evaluation``) and file handling (``checkpoints``, ``events``)
live in separate modules.
"""
