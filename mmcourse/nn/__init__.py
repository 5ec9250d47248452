"""Neural-network building blocks shared by every model: attention, transformer blocks, pooling, ViT, text decoder,
vector quantizer.

Nothing here imports `mmcourse.data`: a block is told its special token ids, it does not look them up.
"""

from mmcourse.nn.attention import (
    KVCache,
    MultiheadAttention,
    fast_attention,
    merge_masks,
    scaled_dot_product_attention,
)
from mmcourse.nn.decoder import GenerateOutput, TextDecoder
from mmcourse.nn.pooling import eot_positions, pool_eot
from mmcourse.nn.quantize import ProductQuantizer, QuantizerOutput, VectorQuantizer, perplexity
from mmcourse.nn.rollout import attention_rollout
from mmcourse.nn.transformer import MLP, QuickGELU, ResidualAttentionBlock, Transformer, TransformerOutput
from mmcourse.nn.vit import VisionTransformer, ViTOutput, patchify

__all__ = [
    "GenerateOutput",
    "KVCache",
    "MLP",
    "MultiheadAttention",
    "QuantizerOutput",
    "QuickGELU",
    "ResidualAttentionBlock",
    "TextDecoder",
    "Transformer",
    "TransformerOutput",
    "ViTOutput",
    "VectorQuantizer",
    "ProductQuantizer",
    "VisionTransformer",
    "attention_rollout",
    "eot_positions",
    "fast_attention",
    "merge_masks",
    "patchify",
    "perplexity",
    "pool_eot",
    "scaled_dot_product_attention",
]
