"""Metrics, zero-shot super-resolution, throughput, plots and reports of trained runs."""

from pdeforge.evaluation._evaluate import METRICS_FILE, evaluate_run
from pdeforge.evaluation._plots import plot_error_spectrum, plot_samples, plot_training_curves, radial_spectrum
from pdeforge.evaluation._report import write_report

__all__ = [
    "METRICS_FILE",
    "evaluate_run",
    "plot_error_spectrum",
    "plot_samples",
    "plot_training_curves",
    "radial_spectrum",
    "write_report",
]
