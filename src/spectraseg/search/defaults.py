"""The default search space: the architecture and training knobs the DSTL search grew.

Written as the YAML a user would write (`spectraseg search --suggest-space` and the docs show
the same form), so the default is also the example. The patch-size range is cut to what the
data set's scenes can hold when the search starts.
"""

from __future__ import annotations

import yaml

from spectraseg.config import Config
from spectraseg.search.space import SearchSpace, parse_space

__all__ = ["DEFAULT_SPACE_YAML", "MIN_PATCH_PX", "default_space"]

MIN_PATCH_PX = 32
"""The smallest patch the default space tries: below it a depth-5 U-Net has no bottleneck left."""

DEFAULT_SPACE_YAML = """\
pruner: median
prune_after_epochs: 3
score_epochs: 3
heartbeat_seconds: 30
grace_seconds: 120
parameters:
  train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
  train.optimizer: {choices: [adamw, sgd]}
  train.batch_size: {choices: [4, 8, 16]}
  data.patch_size: {low: 32, high: 256, step: 32}
  model.name: {choices: [unet, fc-densenet]}
  model.unet.depth: {low: 3, high: 5, when: {model.name: unet}}
  model.unet.base_filters: {low: 8, high: 48, log: true, when: {model.name: unet}}
  model.unet.growth: {low: 1.5, high: 2.0, when: {model.name: unet}}
  model.unet.kernel_size: {choices: [3, 5], when: {model.name: unet}}
  model.unet.convs_per_level: {low: 1, high: 3, when: {model.name: unet}}
  model.unet.batch_norm: {choices: [true, false], when: {model.name: unet}}
  dropout: {choices: [false, true]}
  model.unet.dropout: {low: 0.05, high: 0.5, when: {model.name: unet, dropout: true}}
  model.unet.activation: {choices: [relu, elu, leaky_relu, gelu], when: {model.name: unet}}
  model.unet.init:
    choices: [he_uniform, he_normal, glorot_uniform, glorot_normal]
    when: {model.name: unet}
  model.unet.upsampling: {choices: [transpose, interpolate], when: {model.name: unet}}
  model.fc_densenet.preset: {choices: [56, 67, 103], when: {model.name: fc-densenet}}
  model.fc_densenet.growth_rate: {low: 8, high: 16, when: {model.name: fc-densenet}}
  model.fc_densenet.first_filters: {low: 16, high: 48, log: true, when: {model.name: fc-densenet}}
  model.fc_densenet.bottleneck_width: {choices: [0, 4], when: {model.name: fc-densenet}}
  model.fc_densenet.dropout: {low: 0.0, high: 0.3, when: {model.name: fc-densenet}}
  loss.terms.bce: {low: 0.0, high: 1.0}
  loss.terms.log_jaccard: {low: 0.25, high: 1.0}
  loss.terms.dice: {low: 0.0, high: 1.0}
  loss.terms.focal: {low: 0.0, high: 1.0}
  sampling.class_balance: {low: 0.0, high: 1.0}
  augment.gain: {low: 0.0, high: 0.2}
  augment.noise_std: {low: 0.0, high: 0.1}
"""
# Each architecture's knobs apply only when `model.name` picks it (`when`), so a trial never
# spends a suggestion on a model it does not train.


def default_space(largest_patch_px: int, base: Config | None = None) -> SearchSpace:
    """The default space with the patch range cut to `largest_patch_px` (the scenes' limit)."""
    document = yaml.safe_load(DEFAULT_SPACE_YAML)
    patch = document["parameters"]["data.patch_size"]
    high = max(MIN_PATCH_PX, largest_patch_px // MIN_PATCH_PX * MIN_PATCH_PX)
    patch["high"] = min(patch["high"], high)
    if patch["high"] == patch["low"]:
        document["parameters"]["data.patch_size"] = {"choices": [patch["low"]]}
    return parse_space(document, "the default search space", base)
