"""Each simulated node's true load: a random background plus the jobs placed on it.

The background is an Ornstein-Uhlenbeck process (mean ``mean``, stationary
spread ``spread``, relaxing in ``relax`` seconds), stepped for every node at
once on a grid, so the draws come in a fixed order whatever the nodes do.
A job placed by a best-node answer adds ``job`` to the load, which decays
exponentially with time constant ``job_decay``: a build's compile that ends
after a while. True loads are never negative.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadModel:
    mean: float = 4.0  # background load of an 8-CPU node: half busy on average
    spread: float = 2.5  # stationary standard deviation of the background
    relax: float = 60.0  # seconds for the background to forget its past
    step: float = 1.0  # seconds between two background steps
    job: float = 1.0  # load one placed job adds at first
    job_decay: float = 30.0  # seconds for a job's load to fall to 1/e


class TrueLoads:
    def __init__(self, size: int, model: LoadModel, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
        self.background = [rng.gauss(model.mean, model.spread) for _ in range(size)]
        self.jobs = [0.0] * size  # job load at jobs_at[node]
        self.jobs_at = [0.0] * size
        self.stepped_to = 0.0
        keep = math.exp(-model.step / model.relax)
        self._keep = keep
        self._noise = model.spread * math.sqrt(1.0 - keep * keep)

    def grow(self, size: int) -> None:
        while len(self.background) < size:
            self.background.append(self.rng.gauss(self.model.mean, self.model.spread))
            self.jobs.append(0.0)
            self.jobs_at.append(self.stepped_to)

    def advance(self, now: float) -> None:
        """Step every node's background up to ``now`` (whole steps only)."""
        mean, keep, noise, gauss = self.model.mean, self._keep, self._noise, self.rng.gauss
        bg = self.background
        while self.stepped_to + self.model.step <= now:
            self.stepped_to += self.model.step
            for i, x in enumerate(bg):
                bg[i] = mean + (x - mean) * keep + noise * gauss(0.0, 1.0)

    def _jobs_now(self, node: int, now: float) -> float:
        dt = now - self.jobs_at[node]
        return self.jobs[node] * math.exp(-dt / self.model.job_decay) if dt > 0 else self.jobs[node]

    def value(self, node: int, now: float) -> float:
        return max(0.0, self.background[node]) + self._jobs_now(node, now)

    def place_job(self, node: int, now: float) -> None:
        self.jobs[node] = self._jobs_now(node, now) + self.model.job
        self.jobs_at[node] = now
