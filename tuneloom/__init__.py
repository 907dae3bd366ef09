"""tuneloom: the composition root (CLI and wiring of tuner, collectors and dashboard).

Nothing imports this package; it imports the others.
"""

__version__ = "0.1.0"
