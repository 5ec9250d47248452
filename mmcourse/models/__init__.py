"""The course's models, each built from `mmcourse.nn`; importing this package registers their zoo recipes."""

from mmcourse.models import clip_train  # noqa: F401  (registers the zoo recipe "clip-tiny")
from mmcourse.models.clip import (
    CLIP,
    CLIPConfig,
    TextTransformer,
    pool_argmax_hidden,
    pool_eot,
    zero_shot_classifier,
    zero_shot_predict,
)
from mmcourse.models.clip_port import from_openai_state_dict, load_open_clip_state_dict, load_pretrained

__all__ = [
    "CLIP",
    "CLIPConfig",
    "TextTransformer",
    "pool_argmax_hidden",
    "pool_eot",
    "zero_shot_classifier",
    "zero_shot_predict",
    "from_openai_state_dict",
    "load_open_clip_state_dict",
    "load_pretrained",
]
