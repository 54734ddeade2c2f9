"""The runner: keys, the plan, load-or-compute, persistence; chunk plans and executors.

Public surface: :func:`run_preprocessing`, :class:`PipelineResult`, :class:`Run`, :func:`load_graph`.
"""
from amlgraph.runner._graph import load_graph
from amlgraph.runner._run import PipelineResult, Run, run_preprocessing

__all__ = ["PipelineResult", "Run", "load_graph", "run_preprocessing"]
