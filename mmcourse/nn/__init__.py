"""Neural-network building blocks shared by every model: attention, transformer blocks, ViT."""

from mmcourse.nn.attention import (
    MultiheadAttention,
    fast_attention,
    merge_masks,
    scaled_dot_product_attention,
)
from mmcourse.nn.rollout import attention_rollout
from mmcourse.nn.transformer import MLP, QuickGELU, ResidualAttentionBlock, Transformer, TransformerOutput
from mmcourse.nn.vit import VisionTransformer, ViTOutput, patchify

__all__ = [
    "MLP",
    "MultiheadAttention",
    "QuickGELU",
    "ResidualAttentionBlock",
    "Transformer",
    "TransformerOutput",
    "ViTOutput",
    "VisionTransformer",
    "attention_rollout",
    "fast_attention",
    "merge_masks",
    "patchify",
    "scaled_dot_product_attention",
]
