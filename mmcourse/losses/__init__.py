"""Training losses, one module per family: contrastive (CLIP, SigLIP), image-text matching, language modelling
(next-token, and BERT's masking for masked modelling)."""

from mmcourse.losses.contrastive import clip_loss, siglip_loss, symmetric_cross_entropy
from mmcourse.losses.itm import hard_negative_probs, itm_loss, sample_hard_negatives
from mmcourse.losses.lm import bert_mask, lm_loss

__all__ = ["bert_mask", "clip_loss", "hard_negative_probs", "itm_loss", "lm_loss", "sample_hard_negatives",
           "siglip_loss", "symmetric_cross_entropy"]
