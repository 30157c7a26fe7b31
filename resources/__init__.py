"""Data shipped with CNN Workbench, installed as the package ``workbench_resources``:
``models/`` (trained digits weights + sidecars) and ``filtergan/`` (a trained filter-GAN run).
Read it through :mod:`workbench.resources`, never by a path relative to the source tree."""
