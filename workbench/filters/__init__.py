"""Filters seen as the lecture sees them ("Visualising the filters", Tanner, C6.5 video 12):

- :mod:`workbench.filters.wavelets`: a first layer fixed to a wavelet frame (PyWavelets), with the
  slide's hard and soft thresholds σ_τ;
- :mod:`workbench.filters.gabor`: each filter fitted with its nearest Gabor atom, per layer, against
  the fit of random filters;
- :mod:`workbench.filters.composite`: deeper filters drawn as weighted combinations of the first
  layer's (Lee et al. 2011, the slide's Fig. 3).
"""
