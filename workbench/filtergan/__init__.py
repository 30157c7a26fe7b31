"""Parametrising a conv layer's filters with an InfoGAN (ICLR 2018 submission "Parametrizing
filters of a CNN with a GAN"): training (Algorithm 1), evaluation (sect. 5.2), traversals (sect. 4).

The jobs receive what they work on loaded: :func:`train_filter_gan` the CNN, :func:`evaluation_job`,
:func:`traversal_job` and :func:`~workbench.filtergan.figure.filters_figure_job` a
:class:`FilterGan` (:func:`load_filter_gan`). :func:`evaluate_filter_gan` and :func:`traverse`
(:mod:`workbench.filtergan.api`) are the callers for a run folder: they open it, then return the job."""

from workbench.filtergan.evaluate import FilterGanEvalConfig, diversity, evaluation_job
from workbench.filtergan.layer import LayerSplit, split_at
from workbench.filtergan.networks import Discriminator, FilterGenerator, conv_per_sample
from workbench.filtergan.train import FilterGan, FilterGanConfig, load_filter_gan, train_filter_gan
from workbench.filtergan.traverse import TraversalConfig, TraversalResult, latent_grid, smoothness, traversal_job
# last: the package's name `traverse` is the function, not the submodule workbench.filtergan.traverse
from workbench.filtergan.api import evaluate_filter_gan, traverse

__all__ = ["FilterGanConfig", "FilterGan", "train_filter_gan", "load_filter_gan", "FilterGanEvalConfig",
           "evaluate_filter_gan", "evaluation_job", "diversity", "TraversalConfig", "TraversalResult", "traverse",
           "traversal_job", "latent_grid", "smoothness", "FilterGenerator", "Discriminator", "conv_per_sample",
           "LayerSplit", "split_at"]
