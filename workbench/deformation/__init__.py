"""Deformation stability (Ruderman et al. 2018): random thin-plate-spline deformations and the
per-layer normalized cosine distance."""

from workbench.deformation.features import INPUT, default_layers, layer_extractor
from workbench.deformation.sensitivity import (SensitivityResult, cosine_distance, deformation_sensitivity,
                                               normalized_cosine_distance, pairwise_median)
from workbench.deformation.tps import (PRESETS, control_points, deform, displacement_field, random_deform,
                                       random_displacements, tps_matrix, warp)

__all__ = ["INPUT", "default_layers", "layer_extractor", "SensitivityResult", "cosine_distance",
           "deformation_sensitivity", "normalized_cosine_distance", "pairwise_median", "PRESETS",
           "control_points", "deform", "displacement_field", "random_deform", "random_displacements",
           "tps_matrix", "warp"]
