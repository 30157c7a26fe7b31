"""The papers' reproductions, each a job over the analyses beneath it (docs/architecture.md, Layers):

- :mod:`workbench.studies.deformation`: Ruderman et al.'s deformation-stability studies (pooling,
  smoothing, synthetic), ``workbench study pooling|smoothing|synthetic``;
- :mod:`workbench.studies.representations`: inverting HOG, HOGb and DSIFT (Mahendran & Vedaldi, CVPR 2015
  Table 1 / IJCV 2016 Table 2), ``workbench study representations``.
"""
