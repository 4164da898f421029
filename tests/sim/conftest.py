"""Small simulated worlds shared by the simulator tests (built once per session)."""

from __future__ import annotations

import pytest

from reelrec.data.dataset import Interactions
from reelrec.sim import SimConfig, World, simulate_logs

SMALL = SimConfig(users=600, videos=1500, days=4, uploads_per_day=300, seed=3)


@pytest.fixture(scope="session")
def small_world() -> World:
    return World(SMALL)


@pytest.fixture(scope="session")
def small_logs(small_world: World) -> Interactions:
    return simulate_logs(SMALL, world=small_world)
