"""Evidence from runs: event-file comparison (events, report), and flatness of a model (hessian,
local_entropy). Import the submodule you need; none is imported here, so compare.py does not pay for
building graphs and the graph tools do not pay for matplotlib."""
