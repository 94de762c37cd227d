from pdeforge.models._fno import FNO, TFNO, FourierLayer
from pdeforge.models._layers import ChannelMLP, DomainPadding, GridCoordinates, Pointwise
from pdeforge.models._spectral_conv import DenseSpectralKernel, SpectralConv
from pdeforge.models._tucker import TuckerSpectralKernel
