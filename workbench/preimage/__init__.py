"""Natural pre-images (Mahendran & Vedaldi, IJCV 2016): inversion, activation maximisation, caricature."""

from workbench.config.preimage import METHODS, PreimageConfig
from workbench.preimage.objectives import inner_product_loss, inversion_loss
from workbench.preimage.optimizer import PreimageOptimizer, initial_learning_rate
from workbench.preimage.problem import build_problem
from workbench.preimage.regularizers import alpha_norm, jitter, project_bounded_range, tv_beta
from workbench.preimage.solve import PreimageResult, preimage_job

__all__ = ["alpha_norm", "tv_beta", "jitter", "project_bounded_range", "inversion_loss", "inner_product_loss",
           "PreimageOptimizer", "initial_learning_rate", "PreimageConfig", "PreimageResult", "preimage_job",
           "build_problem", "METHODS"]
