"""CNN Workbench: look inside convolutional networks.

The core (everything outside :mod:`workbench.ui`) is plain Python and torch; it never
imports Qt. Analyses are *jobs* (:mod:`workbench.jobs`) that yield progress events and
write their results to run folders (:mod:`workbench.runs`).
"""

__version__ = "0.1.0"
