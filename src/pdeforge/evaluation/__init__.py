"""Metrics, zero-shot super-resolution, throughput, plots and reports of trained runs, and comparisons."""

from pdeforge.evaluation._compare import compare
from pdeforge.evaluation._compare_table import ComparisonRow
from pdeforge.evaluation._evaluate import METRICS_FILE, evaluate_run
from pdeforge.evaluation._plots import plot_error_spectrum, plot_samples, plot_training_curves, radial_spectrum
from pdeforge.evaluation._refine import refine_run
from pdeforge.evaluation._report import write_report
from pdeforge.evaluation._suite import Suite, suite_from_mapping

__all__ = [
    "METRICS_FILE",
    "ComparisonRow",
    "Suite",
    "compare",
    "evaluate_run",
    "plot_error_spectrum",
    "plot_samples",
    "plot_training_curves",
    "radial_spectrum",
    "refine_run",
    "suite_from_mapping",
    "write_report",
]
