"""Training losses, one module per family: contrastive (CLIP, SigLIP), image-text matching, language modelling."""

from mmcourse.losses.contrastive import clip_loss, siglip_loss, symmetric_cross_entropy
from mmcourse.losses.itm import hard_negative_probs, itm_loss, sample_hard_negatives
from mmcourse.losses.lm import lm_loss

__all__ = ["clip_loss", "hard_negative_probs", "itm_loss", "lm_loss", "sample_hard_negatives", "siglip_loss",
           "symmetric_cross_entropy"]
