"""Choose the compute device once, at the edge."""

from __future__ import annotations

import torch

from pdeforge.errors import PdeforgeError

__all__ = ["choose_device"]


def choose_device(name: str = "auto") -> torch.device:
    """The device a command runs on.

    Parameters
    ----------
    name
        ``auto`` picks CUDA when present, else the CPU; ``cpu``, ``cuda`` and
        ``cuda:N`` are taken as given.

    Returns
    -------
    torch.device
        The chosen device.

    Raises
    ------
    PdeforgeError
        For a name torch does not know, or CUDA asked for where there is none.

    Examples
    --------
    >>> choose_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PdeforgeError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PdeforgeError("--device cuda was asked for but no CUDA device is available")
    return device
