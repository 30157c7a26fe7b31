"""What the window shows, computed without Qt: opening its model (:mod:`.models`), the views'
small computations (:mod:`.compute`: the reference, filters, feature maps, the Runs dock's scan and
details, the filter-GAN MDS), reopening a run (:mod:`.reopen`), the Sweeps and Atlas docks' folders
(:mod:`.grids`) and the Deformation dock's memory check (:mod:`.deformation`).

Plain functions and jobs: :mod:`workbench.ui` runs them on worker threads, so the GUI thread
never computes or reads a file. This package sits just under ``workbench.ui`` in the layers.
"""
