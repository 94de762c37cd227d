"""Orders in which to solve a set of related systems so that neighbours are alike (SKR, step 1).

Krylov recycling pays off when consecutive systems are close; SKR (Wang et al.
2024, sec. 4.1) therefore sorts the systems by the distance between their
parameters (here: the coefficient fields) before solving them.

* :func:`greedy_order`: nearest-neighbour tour, ``O(N^2)`` distances; the
  authors' implementation walks from system 0 to the nearest unvisited
  system by Frobenius distance of the fields.
* :func:`binned_order`: for large ``N``, the authors' reduced variant: the
  low-frequency Fourier coefficients of every field are projected on a few
  principal components, each component is split at the middle of its range,
  and the resulting ``2^d`` cells are visited in Gray-code order (adjacent
  cells differ in one component). Inside a cell we run the greedy tour, which
  keeps the cost near ``O(N^2 / 2^d)``.
"""

from __future__ import annotations

import torch

from pdeforge.errors import PdeforgeError

__all__ = ["binned_order", "greedy_order", "inverse_permutation", "path_length"]


def _flat(params: torch.Tensor) -> torch.Tensor:
    if params.dim() < 1 or params.shape[0] == 0:
        raise PdeforgeError("ordering needs parameters of shape [systems, ...] with at least one system")
    return params.reshape(params.shape[0], -1).to(torch.float64)


def _greedy(features: torch.Tensor, start: int) -> list[int]:
    """Nearest-neighbour tour through the rows of ``features``, from row ``start``."""
    n = features.shape[0]
    dist = torch.cdist(features, features)
    visited = torch.zeros(n, dtype=torch.bool, device=features.device)
    tour = [start]
    visited[start] = True
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
    for _ in range(n - 1):
        row = torch.where(visited, inf, dist[tour[-1]])
        nxt = int(torch.argmin(row))
        tour.append(nxt)
        visited[nxt] = True
    return tour


def greedy_order(params: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Greedy nearest-neighbour order of the systems by Euclidean (Frobenius) parameter distance.

    Parameters
    ----------
    params
        ``[N, ...]`` parameters of each system (e.g. coefficient fields).
    start
        The system the tour starts from.

    Returns
    -------
    torch.Tensor
        ``order`` ``[N]``: solve system ``order[0]`` first, then ``order[1]``, ...

    Examples
    --------
    >>> greedy_order(torch.tensor([[0.0], [10.0], [1.0], [9.0]])).tolist()
    [0, 2, 3, 1]
    """
    features = _flat(params)
    if not 0 <= start < features.shape[0]:
        raise PdeforgeError(f"start {start} is not one of the {features.shape[0]} systems")
    return torch.tensor(_greedy(features, start), dtype=torch.int64)


def _low_modes(fields: torch.Tensor, modes: int) -> torch.Tensor:
    """Real features from the ``modes`` lowest Fourier modes along every spatial axis."""
    dims = tuple(range(1, fields.dim()))
    spectrum = torch.fft.fftn(fields, dim=dims)
    for d in dims:
        n = spectrum.shape[d]
        keep = [i % n for i in range(-(modes // 2), modes - modes // 2)]
        spectrum = spectrum.index_select(d, torch.tensor(sorted(set(keep)), device=spectrum.device))
    flat = spectrum.reshape(spectrum.shape[0], -1)
    return torch.cat([flat.real, flat.imag], dim=1)


def binned_order(params: torch.Tensor, *, modes: int = 12, components: int = 7, start: int = 0) -> torch.Tensor:
    """SKR's order for many systems: FFT low modes, PCA, ``2^components`` cells in Gray-code order.

    Parameters
    ----------
    params
        ``[N, *space]`` fields (one spatial axis or more).
    modes
        Fourier modes kept per axis (the authors use 12).
    components
        Principal components, i.e. bits of the cell code (the authors use 7).
    start
        The system the first cell's tour starts from.

    Returns
    -------
    torch.Tensor
        ``order`` ``[N]``, a permutation of the systems.
    """
    fields = params.to(torch.float64)
    if fields.dim() < 2:
        raise PdeforgeError("binned ordering needs fields of shape [systems, *space]")
    n = fields.shape[0]
    features = _low_modes(fields, modes)
    centred = features - features.mean(dim=0)
    components = max(1, min(components, n - 1, centred.shape[1]))
    # PCA: coordinates along the leading right singular vectors.
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    coords = centred @ vh[:components].mT
    low, high = coords.amin(dim=0), coords.amax(dim=0)
    unit = (coords - low) / torch.where(high > low, high - low, torch.ones_like(high))
    bits = (unit >= 0.5).to(torch.int64)
    code = (bits * (1 << torch.arange(components))).sum(dim=1)
    # Reflected Gray code: cell g(i) = i ^ (i >> 1) is visited i-th; neighbours differ in one bit.
    gray = [i ^ (i >> 1) for i in range(1 << components)]
    full = _flat(fields)
    order: list[int] = []
    for cell in gray:
        members = torch.nonzero(code == cell).flatten().tolist()
        if not members:
            continue
        if not order:
            first = start if start in members else members[0]
        else:  # enter the cell at the member nearest to the last system solved
            d = torch.linalg.vector_norm(full[members] - full[order[-1]], dim=1)
            first = members[int(torch.argmin(d))]
        local = _greedy(full[members], members.index(first))
        order.extend(members[i] for i in local)
    return torch.tensor(order, dtype=torch.int64)


def path_length(params: torch.Tensor, order: torch.Tensor) -> float:
    """Total parameter distance travelled when solving the systems in ``order``."""
    features = _flat(params)[order]
    return float(torch.linalg.vector_norm(features[1:] - features[:-1], dim=1).sum())


def inverse_permutation(order: torch.Tensor) -> torch.Tensor:
    """``inv`` with ``inv[order[i]] = i``: where each original system sits in the sorted sequence."""
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel(), dtype=order.dtype, device=order.device)
    return inv
