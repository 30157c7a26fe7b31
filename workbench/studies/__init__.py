"""The papers' reproductions, each a job over the analyses beneath it (docs/architecture.md, Layers):

- :mod:`workbench.studies.deformation`: Ruderman et al.'s deformation-stability studies (pooling,
  smoothing, synthetic; :mod:`~workbench.studies.random_labels` the random-labels one), their tasks on
  the executors in :mod:`~workbench.studies.deformation_tasks`,
  ``workbench study pooling|smoothing|synthetic|random-labels``;
- :mod:`workbench.studies.lecture`: the lecture's one-layer and wavelet-first-layer studies;
- :mod:`workbench.studies.common`: what every study job shares (its run folder and how it ends);
- :mod:`workbench.studies.representations`: inverting HOG, HOGb and DSIFT (Mahendran & Vedaldi, CVPR 2015
  Table 1 / IJCV 2016 Table 2), ``workbench study representations``.
"""
