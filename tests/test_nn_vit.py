"""ViT: patch embedding == patchify + linear, open_clip layout (weights port by key map), outputs, errors."""

import open_clip
import pytest
import torch
import torch.nn.functional as F

from mmcourse.nn import QuickGELU, VisionTransformer, ViTOutput, patchify

CFG = dict(image_size=32, patch_size=4, width=32, layers=2, heads=4)
VIT = VisionTransformer(**CFG)


def images(n=2, size=32, channels=3):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("p", [2, 4, 8])
def test_patchify_matches_unfold_and_conv(p):
    x = images(size=16, channels=2)
    tokens = patchify(x, p)
    assert tokens.shape == (2, (16 // p) ** 2, 2 * p * p)
    torch.testing.assert_close(tokens, F.unfold(x, kernel_size=p, stride=p).transpose(1, 2))
    conv = VisionTransformer(image_size=16, patch_size=p, width=8, layers=1, heads=2, in_channels=2).conv1
    embedded = conv(x).flatten(2).transpose(1, 2)  # (B, N, width)
    torch.testing.assert_close(embedded, tokens @ conv.weight.flatten(1).T, atol=1e-5, rtol=1e-5)


def port_open_clip(reference) -> VisionTransformer:
    """The whole key map from an open_clip ViT: its fused in_proj is our qkv Linear."""
    sd = {k.replace("attn.in_proj_", "attn.qkv."): v for k, v in reference.state_dict().items()}
    ours = VisionTransformer(**CFG, output_dim=reference.output_dim, act="quick_gelu").eval()
    ours.load_state_dict(sd)  # strict: every key matches, shapes included
    return ours


def test_open_clip_weights_port_with_a_key_map():
    torch.manual_seed(0)
    reference = open_clip.transformer.VisionTransformer(**CFG, mlp_ratio=4.0, output_dim=12,
                                                        act_layer=QuickGELU, output_tokens=True).eval()
    ours = port_open_clip(reference)
    ref_pooled, ref_tokens = reference(images())
    out = ours(images(), return_tokens=True)
    torch.testing.assert_close(out.pooled, ref_pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.tokens, ref_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(images()), ref_pooled, atol=1e-5, rtol=1e-5)


def test_outputs_for_pooling_tokens_attention_and_llava_features():
    torch.manual_seed(0)
    vit = VisionTransformer(**CFG).eval()
    x = images()
    pooled = vit(x)
    assert pooled.shape == (2, 32)  # no proj: ln_post(CLS)
    out = vit(x, return_tokens=True, return_attn=True, return_hidden=True)
    assert isinstance(out, ViTOutput)
    torch.testing.assert_close(out.pooled, pooled)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 65, 65)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(2, 4, 65))
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (2, 65, 32)
    torch.testing.assert_close(out.tokens, vit.ln_post(out.hidden_states[-1])[:, 1:])
    # LLaVA's features: the penultimate layer's tokens without CLS
    torch.testing.assert_close(vit.patch_tokens(x), out.hidden_states[-2][:, 1:])
    torch.testing.assert_close(vit.patch_tokens(x, layer=-1), out.hidden_states[-1][:, 1:])
    assert vit(x, return_tokens=True).attentions is None


def test_conv_stem_gives_64_tokens_and_trains():
    torch.manual_seed(0)
    vit = VisionTransformer(**CFG, conv_stem=True, output_dim=3)
    out = vit(images(), return_tokens=True)
    assert out.tokens.shape == (2, 64, 32) and out.pooled.shape == (2, 3)
    F.cross_entropy(out.pooled, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vit.parameters())


def test_classifier_learns_a_toy_task():
    """Bright vs dark images: a few Adam steps must separate them (the head, CLS and blocks are wired up)."""
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=16, patch_size=4, width=16, layers=1, heads=2, output_dim=2)
    labels = torch.arange(32) % 2
    x = torch.rand(32, 3, 16, 16) * 0.5 + 0.5 * labels[:, None, None, None]
    opt = torch.optim.Adam(vit.parameters(), lr=1e-2)
    for _ in range(15):
        opt.zero_grad()
        F.cross_entropy(vit(x), labels).backward()
        opt.step()
    assert (vit(x).argmax(-1) == labels).float().mean() == 1.0


@pytest.mark.parametrize("make, match", [
    (lambda: VisionTransformer(image_size=30, patch_size=4), "divisible by patch_size: got 30 and 4"),
    (lambda: VisionTransformer(width=30, heads=4), "width must be divisible by heads: got width=30, heads=4"),
    (lambda: VisionTransformer(patch_size=8, conv_stem=True), "patch_size must be 4, got 8"),
    (lambda: VIT(images(size=28)), r"images: expected shape \(B, 3, 32, 32\), got \(2, 3, 28, 28\)"),
    (lambda: VIT(images(channels=1)), r"images: expected shape \(B, 3, 32, 32\), got \(2, 1, 32, 32\)"),
    (lambda: VIT(torch.rand(3, 32, 32)), r"images: expected shape \(B, 3, 32, 32\), got \(3, 32, 32\)"),
    (lambda: VIT.patch_tokens(images(), layer=3), r"layer must be in \[-2, 2\], got 3"),
    (lambda: VIT.transformer(torch.rand(2, 65, 16)), r"x: expected shape \(B, L, 32\), got \(2, 65, 16\)"),
    (lambda: patchify(images(size=30), 4), "H and W must be multiples of patch_size=4, got 30x30"),
])
def test_bad_input_raises_clear_error(make, match):
    with pytest.raises((ValueError, IndexError), match=match):
        make()
