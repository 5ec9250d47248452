"""The course's models, one file per paper, each built from `mmcourse.nn` (never from `mmcourse.data`)."""

from mmcourse.models.clip import (
    CLIP,
    CLIPConfig,
    TextTransformer,
    encode_images,
    encode_texts,
    zero_shot_classifier,
    zero_shot_predict,
)
from mmcourse.models.clip_port import from_openai_state_dict, load_open_clip_state_dict, load_pretrained

__all__ = [
    "CLIP",
    "CLIPConfig",
    "TextTransformer",
    "encode_images",
    "encode_texts",
    "zero_shot_classifier",
    "zero_shot_predict",
    "from_openai_state_dict",
    "load_open_clip_state_dict",
    "load_pretrained",
]
