"""Visualization: the worst-queries figure and its Grad-CAM."""
