"""DeepONet and POD-DeepONet.

DeepONet (Lu, Jin, Pang, Zhang, Karniadakis, "Learning nonlinear operators via
DeepONet", Nat. Mach. Intell. 3, 2021) writes the output as

    G(a)(y) = sum_k b_k(a) t_k(y) + b_0,

a *branch* net ``b`` on the input sampled at fixed sensors and a *trunk* net
``t`` on the output coordinates. POD-DeepONet (Lu, Meng, Cai, Mao, Goswami,
Zhang, Karniadakis, "A comprehensive and fair comparison of two neural
operators", CMAME 393, 2022, sec. 2.2) replaces the trunk by the leading POD
modes of the *training* outputs and adds their mean.

Here the sensors are a fixed ``sensors^d`` grid on the unit box; an input on
any grid is interpolated to it (nodes at ``j / (n - 1)``, both ends included),
and the output comes back on the input's grid, so both models keep the
``forward(x) -> y`` signature on ``[batch, channel, *space]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from pdeforge._typing import Coordinates, Fields, InFields, OutFields
from pdeforge.errors import PdeforgeError

__all__ = ["DeepONet", "PODBasis", "PODDeepONet", "fit_pod"]

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}

BranchOutputs = Float[Tensor, "batch outputs"]
"""The branch net's coefficients ``b_k(a)``, one row per input sample."""

ChannelFields = Float[Tensor, "channels *space"]
"""One field per channel on a grid (no batch axis): the POD mean."""

ChannelModes = Float[Tensor, "channels modes *space"]
"""``modes`` fields per channel on a grid: the POD modes."""

ChannelModeValues = Float[Tensor, "channels modes"]
"""One value per channel and mode: the POD singular values."""


def _mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _resample(x: Fields, shape: tuple[int, ...]) -> Fields:
    """Values at the nodes of a ``shape`` grid on the same box (multilinear interpolation)."""
    if tuple(x.shape[2:]) == tuple(shape):
        return x
    return F.interpolate(x, size=shape, mode=_MODES[len(shape)], align_corners=True)


def _node_coordinates(shape: tuple[int, ...], *, dtype, device) -> Coordinates:
    axes = [torch.linspace(0.0, 1.0, n, dtype=dtype, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


class _Branch(nn.Module):
    def __init__(self, in_channels: int, spatial_dims: int, sensors: int, width: int, depth: int, outputs: int) -> None:
        super().__init__()
        self.sensors = (sensors,) * spatial_dims
        self.net = _mlp([in_channels * sensors**spatial_dims] + [width] * (depth - 1) + [outputs],
                        last_activation=False)

    def forward(self, x: InFields) -> BranchOutputs:
        return self.net(_resample(x, self.sensors).flatten(1))


class DeepONet(nn.Module):
    """Unstacked DeepONet with ``basis`` trunk functions per output channel.

    ``G(a)(y)_c = sum_k b_{c,k}(a) t_{c,k}(y) + b_{0,c}``: the branch ``b`` reads
    the input interpolated to ``sensors^d`` nodes of the unit box, the trunk
    ``t`` the output coordinates ``y`` (the input grid's nodes ``j / (n - 1)``).

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    spatial_dims
        Spatial axes (1 to 3).
    sensors
        Sensor points per axis of the branch input.
    width, depth
        Hidden width and number of linear layers of both nets.
    basis
        Number of branch/trunk products summed per output channel.

    References
    ----------
    Lu, Jin, Pang, Zhang, Karniadakis, "Learning nonlinear operators via
    DeepONet based on the universal approximation theorem of operators",
    Nat. Mach. Intell. 3, 2021, sec. 2 (the unstacked network, eq. 2).

    Examples
    --------
    >>> net = DeepONet(1, 2, spatial_dims=1, sensors=16, width=32, basis=8)
    >>> net(torch.randn(5, 1, 40)).shape
    torch.Size([5, 2, 40])
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int, *, sensors: int = 32,
                 width: int = 128, depth: int = 3, basis: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"DeepONet nets need depth >= 2, got {depth}")
        self.spatial_dims, self.out_channels, self.basis = spatial_dims, out_channels, basis
        self.branch = _Branch(in_channels, spatial_dims, sensors, width, depth, out_channels * basis)
        self.trunk = _mlp([spatial_dims] + [width] * (depth - 1) + [out_channels * basis], last_activation=True)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: InFields) -> OutFields:
        """Evaluate the operator at the nodes of ``x``'s grid.

        Parameters
        ----------
        x
            Input fields ``[batch, in_channels, *space]`` on nodes ``j / (n - 1)``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]`` on the same grid.
        """
        shape = tuple(x.shape[2:])
        b = self.branch(x).reshape(x.shape[0], self.out_channels, self.basis)
        y = _node_coordinates(shape, dtype=x.dtype, device=x.device)
        t = self.trunk(y).reshape(-1, self.out_channels, self.basis)  # [points, out, basis]
        out = torch.einsum("bck,pck->bcp", b, t) + self.bias[:, None]
        return out.reshape(x.shape[0], self.out_channels, *shape)


@dataclass(frozen=True)
class PODBasis:
    """A per-channel POD basis, as returned by :func:`fit_pod`.

    Parameters
    ----------
    mean
        Mean of the snapshots ``[C, *space]``.
    modes
        Orthonormal modes ``[C, p, *space]`` (plain sum over grid points).
    singular_values
        Singular values ``[C, p]`` of the centred snapshot matrices, descending.
    """

    mean: ChannelFields
    modes: ChannelModes
    singular_values: ChannelModeValues


def fit_pod(outputs: Fields, n_modes: int) -> PODBasis:
    """Proper orthogonal decomposition of training outputs ``[N, C, *space]``, per channel.

    The modes are the leading right singular vectors of the centred snapshot
    matrix ``[N, points]`` of each channel: orthonormal in the plain sum over
    grid points. Pass the *training* outputs only: a basis fitted on test
    data leaks it into the model.

    Parameters
    ----------
    outputs
        Snapshots ``[N, C, *space]``; the SVD runs in float64.
    n_modes
        Modes kept per channel, ``1 <= n_modes <= min(N, points)``.

    Returns
    -------
    PODBasis
        Mean, modes and singular values, in the dtype of ``outputs``.

    References
    ----------
    Lu et al., CMAME 393, 2022, sec. 2.2 (POD-DeepONet's trunk).

    Examples
    --------
    >>> basis = fit_pod(torch.randn(10, 1, 6, 5, dtype=torch.float64), 3)
    >>> m = basis.modes.reshape(3, -1)
    >>> torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64))
    True
    """
    n, channels = outputs.shape[:2]
    space = outputs.shape[2:]
    flat = outputs.reshape(n, channels, -1).to(torch.float64)
    if not 1 <= n_modes <= min(n, flat.shape[-1]):
        raise PdeforgeError(f"POD needs 1 <= modes <= min(samples, points) = {min(n, flat.shape[-1])}, got {n_modes}")
    mean = flat.mean(0)
    modes, values = [], []
    for c in range(channels):
        _, s, vh = torch.linalg.svd(flat[:, c] - mean[c], full_matrices=False)
        modes.append(vh[:n_modes])
        values.append(s[:n_modes])
    dtype = outputs.dtype
    return PODBasis(mean.reshape(channels, *space).to(dtype),
                    torch.stack(modes).reshape(channels, n_modes, *space).to(dtype), torch.stack(values).to(dtype))


class PODDeepONet(nn.Module):
    """DeepONet whose trunk is a fixed POD basis of the training outputs.

    ``G(a)_c = sum_k b_{c,k}(a) phi_{c,k} + mean_c``. Build it, then
    :meth:`fit_pod` on the training outputs (or use
    :meth:`from_training_outputs`) before training; the basis is stored in
    buffers ``pod_mean``/``pod_modes`` and so travels with the checkpoint. On
    another grid the basis is interpolated to it.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    spatial_dims
        Spatial axes (1 to 3).
    modes
        POD modes per output channel (the branch's outputs per channel).
    sensors, width, depth
        Sensor points per axis, hidden width and linear layers of the branch.

    References
    ----------
    Lu, Meng, Cai, Mao, Goswami, Zhang, Karniadakis, "A comprehensive and fair
    comparison of two neural operators (with practical extensions) based on
    FAIR data", CMAME 393, 2022, sec. 2.2.

    Examples
    --------
    >>> net = PODDeepONet.from_training_outputs(1, torch.randn(20, 1, 12), modes=4, sensors=6, width=8)
    >>> net(torch.randn(3, 1, 12)).shape
    torch.Size([3, 1, 12])
    """

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int, *, modes: int = 32,
                 sensors: int = 32, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"DeepONet nets need depth >= 2, got {depth}")
        self.spatial_dims, self.out_channels, self.n_modes = spatial_dims, out_channels, modes
        self.branch = _Branch(in_channels, spatial_dims, sensors, width, depth, out_channels * modes)
        self.register_buffer("pod_mean", torch.empty(0))
        self.register_buffer("pod_modes", torch.empty(0))

    @classmethod
    def from_training_outputs(cls, in_channels: int, outputs: Fields, **options) -> PODDeepONet:
        """A model whose basis is fitted on ``outputs`` ``[N, C, *space]`` (training data only).

        Parameters
        ----------
        in_channels
            Channels of the input fields.
        outputs
            Training outputs; they fix ``out_channels`` and ``spatial_dims``.
        **options
            The constructor's keyword options.

        Returns
        -------
        PODDeepONet
        """
        model = cls(in_channels, outputs.shape[1], outputs.ndim - 2, **options)
        model.fit_pod(outputs)
        return model

    def fit_pod(self, outputs: Fields) -> PODBasis:
        """Fit and store the basis from the training outputs ``[N, C, *space]``.

        Parameters
        ----------
        outputs
            Training outputs only, with this model's channels and spatial axes.

        Returns
        -------
        PODBasis
            The fitted basis (its mean and modes are now the model's buffers).
        """
        if outputs.shape[1] != self.out_channels or outputs.ndim - 2 != self.spatial_dims:
            raise PdeforgeError(f"POD outputs of shape {tuple(outputs.shape)} do not match this model "
                                f"({self.out_channels} channels, {self.spatial_dims} spatial axes)")
        basis = fit_pod(outputs, self.n_modes)
        weight = next(self.branch.parameters())  # the first layer's weight: the model's dtype and device
        self.pod_mean = basis.mean.to(weight)
        self.pod_modes = basis.modes.to(weight)
        return basis

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("pod_mean", "pod_modes"):  # the buffers take the checkpoint's grid
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: InFields) -> OutFields:
        """Evaluate the operator on ``x``'s grid (the basis interpolated to it).

        Parameters
        ----------
        x
            Input fields ``[batch, in_channels, *space]`` on nodes ``j / (n - 1)``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]`` on the same grid.
        """
        if self.pod_modes.numel() == 0:
            raise PdeforgeError("POD-DeepONet has no basis yet: call fit_pod(training_outputs) before using it")
        shape = tuple(x.shape[2:])
        b = self.branch(x).reshape(x.shape[0], self.out_channels, self.n_modes)
        modes = _resample(self.pod_modes, shape).reshape(self.out_channels, self.n_modes, -1)
        mean = _resample(self.pod_mean[None], shape)[0].reshape(self.out_channels, -1)
        out = torch.einsum("bck,ckp->bcp", b, modes) + mean
        return out.reshape(x.shape[0], self.out_channels, *shape)
