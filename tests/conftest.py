import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _fixed_seeds():
    """Every test starts from the same random state."""
    torch.manual_seed(0)
    np.random.seed(0)
    yield
