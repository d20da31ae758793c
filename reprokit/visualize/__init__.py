"""Visualization: the worst-queries figure and the run's HTML report (``report``, ``report_*``)."""
