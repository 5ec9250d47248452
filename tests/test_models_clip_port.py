"""The OpenAI / open_clip weight port, checked offline against randomly initialised open_clip models."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mmcourse.models.clip_port import (
    config_from_state_dict,
    convert_state_dict,
    from_openai_state_dict,
    load_open_clip_state_dict,
    load_pretrained,
)

open_clip = pytest.importorskip("open_clip")

TEXTS = ["a photo of a cat", "a diagram of a red circle left of a blue square", "word " * 100, ""]


def perturbed(model):
    """Random init leaves biases at 0 and LayerNorms at 1, which could hide swapped keys: perturb them all."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def small_open_clip(quick_gelu):
    vision = dict(image_size=32, patch_size=8, width=64, layers=2, head_width=16)  # 4 heads
    text = dict(context_length=77, vocab_size=49408, width=64, heads=4, layers=2)
    return perturbed(open_clip.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text, quick_gelu=quick_gelu))


def assert_same_features(ours, reference, image_size):
    ids = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    images = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for encode, inputs in (("encode_image", images), ("encode_text", ids)):
            ours_out, theirs_out = getattr(ours, encode)(inputs), getattr(reference, encode)(inputs)
            torch.testing.assert_close(ours_out, theirs_out, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.logit_scale, reference.logit_scale)


def test_open_clip_tokenizer_works_offline_and_ends_with_the_largest_id():
    ids = open_clip.get_tokenizer("ViT-B-32")(TEXTS)
    assert ids.shape == (len(TEXTS), 77)
    assert (ids.max(dim=1).values == 49407).all()  # EOT is the largest id: argmax pooling == EOT pooling
    assert ids[2, -1] == 49407  # a caption cut at the context length still ends with EOT


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_small_custom_model_ports_exactly(quick_gelu):
    reference = small_open_clip(quick_gelu)
    ours = from_openai_state_dict(reference.state_dict(), quick_gelu=quick_gelu, vision_heads=4, text_heads=4)
    assert ours.config.act == ("quick_gelu" if quick_gelu else "gelu")
    assert (ours.config.image_size, ours.config.patch_size, ours.config.eot_id) == (32, 8, 49407)
    assert not ours.training
    assert_same_features(ours, reference, 32)


def test_wrong_activation_or_heads_are_detected():
    """The comparison is sharp enough to see QuickGELU vs GELU and a wrong head split."""
    reference = small_open_clip(quick_gelu=True)
    for kwargs in (dict(quick_gelu=False, vision_heads=4, text_heads=4), dict(vision_heads=1, text_heads=4)):
        with pytest.raises(AssertionError):
            assert_same_features(from_openai_state_dict(reference.state_dict(), **kwargs), reference, 32)


def test_vit_b_32_ports_exactly():
    reference = perturbed(open_clip.create_model("ViT-B-32-quickgelu", pretrained=None))
    ours = from_openai_state_dict(reference.state_dict())  # heads inferred as width // 64, like OpenAI's
    c = ours.config
    assert (c.image_size, c.patch_size, c.vision_layers, c.vision_heads, c.text_heads, c.context_length) == (
        224, 32, 12, 12, 8, 77)
    assert_same_features(ours, reference, 224)


def test_openai_extras_and_fp16_weights_load():
    reference = small_open_clip(quick_gelu=True)
    sd = {k: v.half() for k, v in reference.state_dict().items()}
    sd.update(input_resolution=torch.tensor(32), context_length=torch.tensor(77),
              vocab_size=torch.tensor(49408))
    ours = from_openai_state_dict(sd, vision_heads=4, text_heads=4)
    assert ours.text.token_embedding.weight.dtype == torch.float32
    torch.testing.assert_close(ours.visual.proj, sd["visual.proj"].float())


def test_key_map():
    sd = small_open_clip(quick_gelu=True).state_dict()
    converted = convert_state_dict(sd)
    assert converted["visual.transformer.resblocks.1.attn.qkv.weight"] is sd[
        "visual.transformer.resblocks.1.attn.in_proj_weight"]
    text_bias = sd["transformer.resblocks.0.attn.in_proj_bias"]
    assert converted["text.transformer.resblocks.0.attn.qkv.bias"] is text_bias
    assert converted["text.token_embedding.weight"] is sd["token_embedding.weight"]
    assert converted["logit_scale"] is sd["logit_scale"]
    assert len(converted) == len(sd)


def test_mismatches_are_listed_in_one_error():
    reference = small_open_clip(quick_gelu=True)
    ours = from_openai_state_dict(reference.state_dict(), vision_heads=4, text_heads=4)
    sd = dict(reference.state_dict())
    del sd["ln_final.bias"]
    sd["visual.extra"] = torch.zeros(1)
    sd["text_projection"] = torch.zeros(64, 16)
    with pytest.raises(ValueError) as info:
        load_open_clip_state_dict(ours, sd)
    message = str(info.value)
    assert "missing (1): text.ln_final.bias" in message
    assert "unexpected (1): visual.extra" in message
    assert "text.text_projection: ours (64, 32), theirs (64, 16)" in message


def test_resnet_towers_and_foreign_dicts_are_refused():
    with pytest.raises(NotImplementedError, match="modified-ResNet"):
        config_from_state_dict({"visual.layer1.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="not an OpenAI / open_clip ViT CLIP state dict"):
        config_from_state_dict({"encoder.weight": torch.zeros(1)})


def test_load_pretrained_unknown_tag_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained weights 'no-such-tag' for 'ViT-B-32'"):
        load_pretrained("ViT-B-32", "no-such-tag")


def test_load_pretrained_offline_is_a_friendly_error(tmp_path):
    """In a child process with the hub offline and every socket refused, so it cannot hang on the network."""
    script = textwrap.dedent(f"""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled by the test")

        socket.socket.connect = refuse
        from mmcourse.models.clip_port import load_pretrained
        try:
            load_pretrained("ViT-B-32", "openai", cache_dir={str(tmp_path)!r})
        except RuntimeError as e:
            print("FRIENDLY:", e)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            timeout=120)
    assert "FRIENDLY: could not fetch the ViT-B-32 / openai weights (are you offline?)" in result.stdout, (
        result.stdout + result.stderr)
