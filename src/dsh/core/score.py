"""Scoring functions: which node should run the next job. Lower is better.

Each function sees one node (its last report, its scales from the cluster
file, and the extra load this daemon has added for jobs it recently sent
there) and returns a number. They are pure; ``dshd --score NAME`` selects one
from ``SCORES``. To add your own, write a function here and register it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

GIB = 1024**3

# How much a node's lack of free memory weighs against its load: a node with
# no free memory scores as if it had MEMORY_WEIGHT more jobs per CPU.
MEMORY_WEIGHT = 0.25


@dataclass(frozen=True)
class NodeView:
    load: float  # effective load reported by the node (running tasks)
    load1: float  # its 1-minute load average
    ncpu: int
    mem_avail: int  # bytes
    loadscale: float
    memscale: float
    extra: float  # load this daemon added for jobs it sent there lately


def memory_term(v: NodeView) -> float:
    """Between 0 (plenty of free memory) and 1 (none); MEMSCALE makes memory count more."""
    return 1.0 / (1.0 + v.mem_avail / GIB * v.memscale)


def score_load(v: NodeView) -> float:
    """Default: per-CPU load once one more job is placed, times LOADSCALE, plus memory.

    ``(load + extra + 1) / ncpu * loadscale + 0.25 / (1 + free_GiB * memscale)``.
    Counting the job about to be placed (the ``+ 1``) is what makes LOADSCALE
    matter on idle nodes: an idle node twice as slow scores twice as high.
    """
    return (v.load + v.extra + 1.0) / v.ncpu * v.loadscale + MEMORY_WEIGHT * memory_term(v)


def score_loadavg(v: NodeView) -> float:
    """The original dshd's view: the 1-minute load average per CPU times LOADSCALE.

    It reacts slowly (a new job shows after tens of seconds) but ignores
    short spikes; the extra load still spreads bursts.
    """
    return (v.load1 + v.extra + 1.0) / v.ncpu * v.loadscale + MEMORY_WEIGHT * memory_term(v)


def score_memory(v: NodeView) -> float:
    """For memory-hungry jobs: most free memory (times MEMSCALE) first, load breaks ties."""
    return memory_term(v) + 0.001 * (v.load + v.extra + 1.0) / v.ncpu * v.loadscale


ScoreFunction = Callable[[NodeView], float]

SCORES: dict[str, ScoreFunction] = {
    "load": score_load,
    "loadavg": score_loadavg,
    "memory": score_memory,
}
DEFAULT_SCORE = "load"
