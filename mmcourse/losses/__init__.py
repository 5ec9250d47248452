"""Training losses, one module per family: contrastive (CLIP, SigLIP), language modelling."""

from mmcourse.losses.contrastive import clip_loss, siglip_loss, symmetric_cross_entropy
from mmcourse.losses.lm import lm_loss

__all__ = ["clip_loss", "lm_loss", "siglip_loss", "symmetric_cross_entropy"]
