"""Port OpenAI / open_clip CLIP weights (ViT image towers) into `mmcourse.models.CLIP`.

The two layouts differ in three places only:
    *.attn.in_proj_weight / in_proj_bias (nn.MultiheadAttention)  ->  *.attn.qkv.weight / qkv.bias
    token_embedding, positional_embedding, transformer, ln_final, text_projection  ->  text.<same name>
    OpenAI's JIT archives also carry input_resolution / context_length / vocab_size entries: dropped.
Everything else (visual.*, logit_scale) keeps its name. Text pooling: OpenAI pools at `ids.argmax(-1)`,
which is the EOT token because EOT is the largest id (49407 of 49408); the port sets eot_id to that id.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from mmcourse.models.clip import CLIP, CLIPConfig

__all__ = ["convert_state_dict", "config_from_state_dict", "from_openai_state_dict",
           "load_open_clip_state_dict", "load_pretrained"]

TEXT_KEYS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def convert_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """open_clip / OpenAI key names -> ours (the tensors themselves are shared, not copied)."""
    _check_state_dict(state_dict)
    converted = {}
    for key, value in state_dict.items():
        if key in OPENAI_EXTRAS:
            continue
        new = key.replace("attn.in_proj_", "attn.qkv.")  # in_proj_weight -> qkv.weight, _bias -> .bias
        converted["text." + new if new.startswith(TEXT_KEYS) else new] = value
    return converted


def config_from_state_dict(state_dict: dict[str, Tensor], quick_gelu: bool = True,
                           vision_heads: int | None = None, text_heads: int | None = None,
                           eot_id: int | None = None) -> CLIPConfig:
    """Read the sizes off the tensor shapes (as open_clip's build_model_from_openai_state_dict does).

    Head counts are not visible in shapes: the default is OpenAI's width // 64. eot_id defaults to the
    largest id (vocab_size - 1), the token OpenAI's argmax pooling finds.
    """
    sd = _check_state_dict(state_dict)
    if "visual.layer1.0.conv1.weight" in sd or "visual.attnpool.positional_embedding" in sd:
        raise NotImplementedError("this is a modified-ResNet CLIP (RN50, RN101, ...): only ViT image towers "
                                  "port to mmcourse's CLIP; pick a ViT model (e.g. ViT-B-32)")
    needed = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "token_embedding.weight",
              "positional_embedding", "ln_final.weight", "text_projection")
    missing = [k for k in needed if k not in sd]
    if missing:
        raise KeyError(f"state_dict: not an OpenAI / open_clip ViT CLIP state dict, missing {missing}")

    def n_layers(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})

    vision_width, _, patch_size, _ = sd["visual.conv1.weight"].shape
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    vocab_size, text_width = sd["token_embedding.weight"].shape
    return CLIPConfig(
        vocab_size=vocab_size, eot_id=vocab_size - 1 if eot_id is None else eot_id,
        context_length=sd["positional_embedding"].shape[0], embed_dim=sd["text_projection"].shape[1],
        image_size=patch_size * grid, patch_size=patch_size,
        vision_width=vision_width, vision_layers=n_layers("visual.transformer.resblocks."),
        vision_heads=vision_heads or vision_width // 64,
        text_width=text_width, text_layers=n_layers("transformer.resblocks."),
        text_heads=text_heads or text_width // 64,
        act="quick_gelu" if quick_gelu else "gelu", loss="siglip" if "logit_bias" in sd else "clip")


def load_open_clip_state_dict(model: CLIP, state_dict: dict[str, Tensor]) -> CLIP:
    """Copy open_clip / OpenAI weights into `model` (in place, cast to its dtype); returns the model.

    Any missing or unexpected key or wrong shape raises one ValueError that lists them all by name.
    """
    converted = convert_state_dict(state_dict)
    ours = model.state_dict()
    problems = {
        "missing": sorted(set(ours) - set(converted)),
        "unexpected": sorted(set(converted) - set(ours)),
        "wrong shape": [f"{k}: ours {tuple(ours[k].shape)}, theirs {tuple(v.shape)}"
                        for k, v in converted.items() if k in ours and ours[k].shape != v.shape],
    }
    if any(problems.values()):
        lines = [f"  {kind} ({len(keys)}): " + ", ".join(keys[:8]) + (" ..." if len(keys) > 8 else "")
                 for kind, keys in problems.items() if keys]
        raise ValueError("state_dict does not fit this CLIP (key names after conversion):\n"
                         + "\n".join(lines))
    model.load_state_dict(converted)
    return model


def from_openai_state_dict(state_dict: dict[str, Tensor], quick_gelu: bool = True, **config_kwargs) -> CLIP:
    """A CLIP built from the shapes of an OpenAI / open_clip state dict, with its weights, in eval mode.

    config_kwargs go to `config_from_state_dict` (vision_heads, text_heads, eot_id).
    """
    model = CLIP(config_from_state_dict(state_dict, quick_gelu, **config_kwargs))
    return load_open_clip_state_dict(model, state_dict).eval()


def load_pretrained(name: str = "ViT-B-32", pretrained: str = "openai", cache_dir: str | None = None) -> CLIP:
    """Real pretrained weights, fetched by open_clip (online, or from its cache) and ported; fp32, eval mode.

    Tokenize with `open_clip.get_tokenizer(name)`; images need open_clip's preprocessing for this model
    (resize to image_size, OpenAI mean/std normalisation).
    """
    try:
        import open_clip
    except ImportError as e:
        raise ImportError("load_pretrained needs open_clip: pip install open_clip_torch") from e
    tag = open_clip.get_pretrained_cfg(name, pretrained)
    if not tag:
        raise ValueError(f"open_clip has no pretrained weights {pretrained!r} for {name!r}; it has "
                         f"{open_clip.list_pretrained_tags_by_model(name)}")
    try:
        reference = open_clip.create_model(name, pretrained=pretrained, cache_dir=cache_dir,
                                           force_quick_gelu=tag.get("quick_gelu", False))
    except Exception as e:  # offline, blocked hub, proxy ...: open_clip raises many kinds
        raise RuntimeError(f"could not fetch the {name} / {pretrained} weights (are you offline?). Nothing "
                           "in the course needs them: every chapter runs on the models it trains. "
                           f"Cause: {e}") from e
    heads = {"vision_heads": _heads(getattr(reference.visual, "transformer", None)),
             "text_heads": _heads(getattr(reference, "transformer", None))}
    return from_openai_state_dict(reference.state_dict(), quick_gelu=tag.get("quick_gelu", False), **heads)


def _check_state_dict(state_dict) -> Mapping:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a dict of tensors (name -> Tensor), got {type(state_dict).__name__}")
    return state_dict


def _heads(transformer) -> int | None:
    """The head count of an open_clip Transformer; None for other towers (config_from_state_dict refuses)."""
    try:
        return transformer.resblocks[0].attn.num_heads
    except (AttributeError, IndexError, TypeError):
        return None
