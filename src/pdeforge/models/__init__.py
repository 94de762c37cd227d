"""Neural operators on ``[batch, channel, *space]``: spectral convolution and the model zoo.

Every model maps ``forward(x) -> y``; the Fourier models work at any
resolution. :data:`MODELS` is the one table of models (builder, summary, paper, what
the tests need); :func:`build_model` is what the training command calls.
"""

from pdeforge.models._deeponet import DeepONet, PODBasis, PODDeepONet, fit_pod
from pdeforge.models._fno import FNO, TFNO, FourierLayer
from pdeforge.models._fourier import kept_modes, truncated_irfft, truncated_rfft
from pdeforge.models._layers import ChannelMLP, DomainPadding, GridCoordinates, Pointwise
from pdeforge.models._lsm import LSM, LatentSpectralTransition, NeuralSpectralBlock
from pdeforge.models._mgno import MgNO, MgNOLayer, MultigridLevel, VCycle, level_shapes
from pdeforge.models._patching import MultigridPatching, window_indices
from pdeforge.models._registry import MODELS, ModelSpec, build_model, model_names, model_options
from pdeforge.models._scot import ScOT
from pdeforge.models._spacetime import STFNO, FNO3d
from pdeforge.models._spectral_conv import DenseSpectralKernel, SpectralConv, mix_modes, widen_spectral_conv
from pdeforge.models._t1 import T1, T1Layer, real_fourier, real_fourier_inverse
from pdeforge.models._tucker import TuckerSpectralKernel, tucker_ranks
from pdeforge.models._unet import UNet2d

__all__ = [
    "MODELS",
    "ChannelMLP",
    "DeepONet",
    "DenseSpectralKernel",
    "DomainPadding",
    "FNO",
    "FNO3d",
    "FourierLayer",
    "GridCoordinates",
    "LSM",
    "LatentSpectralTransition",
    "MgNO",
    "MgNOLayer",
    "ModelSpec",
    "MultigridLevel",
    "MultigridPatching",
    "NeuralSpectralBlock",
    "PODBasis",
    "PODDeepONet",
    "Pointwise",
    "STFNO",
    "ScOT",
    "SpectralConv",
    "T1",
    "T1Layer",
    "TFNO",
    "TuckerSpectralKernel",
    "UNet2d",
    "VCycle",
    "build_model",
    "fit_pod",
    "kept_modes",
    "level_shapes",
    "mix_modes",
    "model_names",
    "model_options",
    "real_fourier",
    "real_fourier_inverse",
    "truncated_irfft",
    "truncated_rfft",
    "tucker_ranks",
    "widen_spectral_conv",
    "window_indices",
]
