"""CNN Workbench: look inside convolutional networks.

The core (everything outside :mod:`workbench.ui`) is plain Python and torch; it never
imports Qt. Analyses are *jobs* (:mod:`workbench.jobs`) that yield progress events and
write their results to run folders (:mod:`workbench.runs`).
"""

from pathlib import Path
import os

__version__ = "0.1.0"

RESOURCES = Path(os.environ.get("WORKBENCH_RESOURCES", Path(__file__).resolve().parent.parent / "resources"))
