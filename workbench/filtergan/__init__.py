"""Parametrising a conv layer's filters with an InfoGAN (ICLR 2018 submission "Parametrizing
filters of a CNN with a GAN"): training (Algorithm 1), evaluation (sect. 5.2), traversals (sect. 4)."""

from workbench.filtergan.evaluate import FilterGanEvalConfig, diversity, evaluate_filter_gan
from workbench.filtergan.layer import LayerSplit, split_at
from workbench.filtergan.networks import Discriminator, FilterGenerator, conv_per_sample
from workbench.filtergan.train import FilterGan, FilterGanConfig, load_filter_gan, train_filter_gan
from workbench.filtergan.traverse import TraversalConfig, TraversalResult, latent_grid, smoothness, traverse

__all__ = ["FilterGanConfig", "FilterGan", "train_filter_gan", "load_filter_gan", "FilterGanEvalConfig",
           "evaluate_filter_gan", "diversity", "TraversalConfig", "TraversalResult", "traverse", "latent_grid",
           "smoothness", "FilterGenerator", "Discriminator", "conv_per_sample", "LayerSplit", "split_at"]
