"""Sweeps (issue 11): a grid of ordinary pre-image runs, on this process, a process pool or Ray.

- :mod:`workbench.sweep.grid` expands a :class:`~workbench.config.sweep.SweepConfig` into cells,
  each a :class:`~workbench.config.preimage.PreimageConfig` keyed by a hash of its ``to_dict``;
- :mod:`workbench.sweep.cell` runs one cell (``preimage_job`` through ``run_job``) wherever it lands;
- :mod:`workbench.sweep.executors` are the three ways to run them (local, process, ray);
- :mod:`workbench.sweep.job` is the sweep job: resume, progress with ETA, results.csv/json;
- :mod:`workbench.sweep.tables` makes the paper-fig6 table and figure, :mod:`workbench.sweep.atlas`
  the network atlas.
"""

