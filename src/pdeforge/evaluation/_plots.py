"""Figures people would rather look at than numbers: fields, error spectra, training curves.

Each figure is a :class:`matplotlib.figure.Figure` drawn on its own Agg
canvas, so making plots neither needs nor changes matplotlib's global
backend, and importing this module imports neither matplotlib nor pyplot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_error_spectrum", "plot_samples", "plot_training_curves", "radial_spectrum"]


def _figure(figsize: tuple[float, float]):
    """A figure with an Agg canvas of its own (no pyplot, no global backend, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _plain_ticks(axis) -> None:
    """Label a logarithmic ``axis`` with plain numbers (``0.72``, ``3``), not ``7.2 x 10^-1`` or ``3 x 10^0``."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain)


def _label(ax, xlabel: str, ylabel: str, title: str, *, legend_size: float | None = None,
           which: str = "both") -> None:
    """Axis labels, title, legend and a light grid: what every line plot here ends with."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    ax.grid(True, which=which, alpha=0.3)


def _last_channel_field(t: np.ndarray) -> np.ndarray:
    """The field shown for a sample ``[channel, *space]``: its last channel (e.g. the final time)."""
    return t[-1]


_AXIS_NAMES = ("x", "y", "z")


def _mid_plane(field: np.ndarray) -> tuple[np.ndarray, str]:
    """A field of one or two axes as it is, a field of more axes cut through the middle of each further axis.

    Returns the field of at most two axes and a note saying where it was cut
    (``"z = 0.5"``: the node ``n // 2`` of ``n``, in units of the axis' length).
    """
    cuts = []
    while field.ndim > 2:
        n = field.shape[-1]
        name = _AXIS_NAMES[field.ndim - 1] if field.ndim <= len(_AXIS_NAMES) else f"axis {field.ndim - 1}"
        cuts.append(f"{name} = {(n // 2) / n:.3g}")
        field = field[..., n // 2]
    return field, ", ".join(reversed(cuts))


def plot_samples(path: Path, x: np.ndarray, y: np.ndarray, pred: np.ndarray, *, title: str = "") -> Path:
    """Rows of input | truth | prediction | error for a few samples ``[n, channel, *space]``.

    1-D fields are drawn as curves, 2-D fields as images, and fields of more
    axes as the image of their mid-plane (``z = 0.5`` in 3-D), said in the title.
    """
    n = len(x)
    note = ""
    fig = _figure((13, 3.1 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        fields = []
        for sample in (x[i], y[i], pred[i]):
            field, note = _mid_plane(_last_channel_field(sample))
            fields.append(field)
        fields.append(fields[2] - fields[1])
        names = ["input", "truth", "prediction", "error (prediction - truth)"]
        vmin, vmax = float(min(fields[1].min(), fields[2].min())), float(max(fields[1].max(), fields[2].max()))
        for j, (ax, field, name) in enumerate(zip(axes[i], fields, names, strict=True)):
            if field.ndim == 1:
                ax.plot(np.linspace(0, 1, len(field)), field, lw=1.2)
                ax.set_xlabel("x")
                if j in (1, 2):
                    ax.set_ylim(vmin - 0.05 * (vmax - vmin), vmax + 0.05 * (vmax - vmin))
            else:
                kwargs = {"vmin": vmin, "vmax": vmax} if j in (1, 2) else {}
                if j == 3:
                    bound = float(np.abs(field).max()) or 1.0
                    kwargs = {"vmin": -bound, "vmax": bound, "cmap": "RdBu_r"}
                im = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), **kwargs)
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xlabel("x")
                ax.set_ylabel("y")
            ax.set_title(f"{name}" + (f" (sample {i})" if j == 0 else ""))
    if title or note:
        fig.suptitle(", ".join(part for part in (title, note and f"plane {note}") if part))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def radial_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy per integer wavenumber shell of fields ``[n, *space]``, averaged over ``n``."""
    spatial = field.shape[1:]
    coeffs = np.fft.fftn(field, axes=tuple(range(1, field.ndim))) / np.prod(spatial)
    power = (np.abs(coeffs) ** 2).mean(0)
    grids = np.meshgrid(*[np.fft.fftfreq(s, 1.0 / s) for s in spatial], indexing="ij")
    shell = np.rint(np.sqrt(sum(g * g for g in grids))).astype(int)
    kmax = min(spatial) // 2
    energy = np.bincount(shell.ravel(), weights=power.ravel(), minlength=kmax + 1)[: kmax + 1]
    return np.arange(kmax + 1), energy


def plot_error_spectrum(path: Path, truth: np.ndarray, pred: np.ndarray) -> Path:
    """Radially binned energy spectra of the truth and of the error (last channel of ``[n, channel, *space]``)."""
    k, e_true = radial_spectrum(truth[:, -1])
    _, e_err = radial_spectrum(pred[:, -1] - truth[:, -1])
    fig = _figure((6, 4))
    ax = fig.subplots()
    keep = k > 0
    ax.loglog(k[keep], e_true[keep], label="truth")
    ax.loglog(k[keep], e_err[keep], label="error")
    _plain_ticks(ax.xaxis)
    _label(ax, "wavenumber |k|", "energy", "error spectrum (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_training_curves(path: Path, rows: list[dict]) -> Path:
    """Training and validation loss, and the learning rate, per epoch."""
    epochs = [r["epoch"] for r in rows]
    fig = _figure((11, 4))
    ax, ax_lr = fig.subplots(1, 2)
    ax.semilogy(epochs, [r["train_loss"] for r in rows], label="train")
    ax.semilogy(epochs, [r["val_loss"] for r in rows], label="validation")
    _plain_ticks(ax.yaxis)
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax_lr.xaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    _label(ax, "epoch", "loss", "loss per epoch")
    ax_lr.plot(epochs, [r["lr"] for r in rows])
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("learning rate per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def _shown_steps(steps: int, count: int = 4) -> list[int]:
    """Up to ``count`` snapshot indices spread over ``0 .. steps - 1``, the last one included."""
    return sorted({round(i * (steps - 1) / max(1, count - 1)) for i in range(min(count, steps))})


def plot_lead_time(path: Path, times: np.ndarray, errors: dict[str, np.ndarray]) -> Path:
    """Mean relative L2, VRMSE and binned spectral MSE against lead time (``errors`` from ``lead_time_errors``)."""
    fig = _figure((11, 4))
    left, right = fig.subplots(1, 2)
    left.plot(times, errors["rel_l2"].mean(0), marker="o", label="relative L2")
    left.plot(times, errors["vrmse"].mean(0), marker="s", label="VRMSE")
    _label(left, "lead time t", "error (mean over test samples)", "error against lead time", which="major")
    for band, name in enumerate(("low |k|", "mid |k|", "high |k|")):
        right.semilogy(times, np.maximum(errors["spectral_mse"][..., band].mean(0), 1e-300), marker=".", label=name)
    _label(right, "lead time t", "MSE carried by the band", "binned spectral MSE (The Well's three bands)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_lead_time_spectra(path: Path, times: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> Path:
    """Energy spectra of truth and prediction at a few lead times (``[n, T, *space]``, first channel of each step)."""
    fig = _figure((6, 4))
    ax = fig.subplots()
    for index, step in enumerate(_shown_steps(len(times))):
        k, e_true = radial_spectrum(truth[:, step])
        _, e_pred = radial_spectrum(pred[:, step])
        keep = k > 0
        colour = f"C{index}"
        ax.loglog(k[keep], e_true[keep], color=colour, label=f"truth t = {times[step]:.3g}")
        ax.loglog(k[keep], e_pred[keep], color=colour, linestyle="--", label=f"prediction t = {times[step]:.3g}")
    _plain_ticks(ax.xaxis)
    _label(ax, "wavenumber |k|", "energy", "energy spectra against lead time (test set)", legend_size=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)


def plot_lead_time_strip(path: Path, times: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> Path:
    """One test trajectory at a few lead times: rows truth | prediction | error (``[T, *space]``, one channel)."""
    shown = _shown_steps(len(times))
    fig = _figure((3.2 * len(shown), 8))
    axes = np.asarray(fig.subplots(3, len(shown), squeeze=False))
    note = ""
    for column, step in enumerate(shown):
        rows = (truth[step], pred[step], pred[step] - truth[step])
        limits = (float(truth[step].min()), float(truth[step].max()))  # prediction on the truth's colour scale
        for row, (name, field) in enumerate(zip(("truth", "prediction", "error"), rows, strict=True)):
            ax = axes[row, column]
            field, note = _mid_plane(field)
            if field.ndim == 1:
                ax.plot(field)
            else:
                style = {"cmap": "RdBu_r"} if row == 2 else {"cmap": "viridis", "vmin": limits[0], "vmax": limits[1]}
                image = ax.imshow(field.T, origin="lower", **style)
                fig.colorbar(image, ax=ax, fraction=0.046)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"{name}, t = {times[step]:.3g}", fontsize=9)
    fig.suptitle("a test trajectory" + (f" ({note})" if note else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return Path(path)


def plot_refinement(path: Path, rel_l2: list[float], h_minus1: list[float]) -> Path:
    """Relative L2 error and H^-1 residual against Spectral-Refiner fine-tuning step (means over the inputs)."""
    fig = _figure((11, 4))
    left, right = fig.subplots(1, 2)
    steps = np.arange(len(h_minus1))
    left.semilogy(steps, rel_l2, label="mean over the refined inputs")
    _plain_ticks(left.yaxis)
    _label(left, "fine-tuning step", "relative L2 error", "error against the truth (not used to fine-tune)")
    right.semilogy(steps, h_minus1, label="mean over the refined inputs")
    _plain_ticks(right.yaxis)
    _label(right, "fine-tuning step", "H^-1 residual", "Navier-Stokes residual (the fine-tuning loss)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return Path(path)
