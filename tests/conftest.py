"""Fixtures shared by every test: fixed seeds, one torch thread on request, the shared data files."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch


def shared_data() -> Path | None:
    """The project's shared third-party data (``../shared/data`` beside the repository)."""
    candidates = [os.environ.get("PDEFORGE_SHARED_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data",
                  "/work/shared/data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "neuralop" / "darcy_train_16.pt").is_file():
            return Path(candidate)
    return None


@pytest.fixture
def neuralop_dir() -> Path:
    """The folder of the shared neuraloperator Darcy files; the test is skipped where they are absent."""
    found = shared_data()
    if found is None:
        pytest.skip("the shared neuraloperator files (../shared/data/neuralop) are not available")
    return found / "neuralop"


@pytest.fixture(scope="module")
def one_torch_thread():
    """For tests of many small tensor operations: one thread avoids OpenMP contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fixed_seeds():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield
