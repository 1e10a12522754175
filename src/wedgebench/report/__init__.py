"""Report: Table 1 (:mod:`~wedgebench.report.table`) and figures
(:mod:`~wedgebench.report.figures`) built from metric records."""

from wedgebench.report.table import build_table1, to_markdown

__all__ = ["build_table1", "to_markdown"]
