"""BLIP: one text transformer three ways; the decoder shares all but self-attention with the encoder."""

import pytest
import torch

from mmcourse.models.blip import BLIP, SHARED_WITH_DECODER, BLIPConfig

V, CTX, ENC, DEC, EOT, PAD = 30, 10, 28, 29, 2, 0


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return BLIP(BLIPConfig(V, CTX, enc_id=ENC, dec_id=DEC, eot_id=EOT, pad_id=PAD, vision_width=12, width=16,
                           layers=2, heads=2, embed_dim=8, **kw))


def batch(B=4, L=7, M=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 28, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = 1, EOT
    ids[0, 4:] = PAD
    ids[0, 3] = EOT
    return torch.randn(B, M, 12, generator=g), ids


def test_decoder_shares_everything_but_self_attention():
    m = model()
    for enc, dec in zip(m.encoder.resblocks, m.decoder.transformer.resblocks, strict=True):
        for name in SHARED_WITH_DECODER:
            assert getattr(enc, name) is getattr(dec, name)
        assert enc.attn is not dec.attn and enc.ln_1 is not dec.ln_1
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    shared = sum(count(getattr(blk, n)) for blk in m.decoder.transformer.resblocks for n in SHARED_WITH_DECODER)
    heads = sum(count(h) for h in (m.vision_proj, m.text_proj, m.itm_head)) + 1  # + logit_scale
    assert shared > 0 and count(m) == count(m.encoder) + count(m.decoder) - shared + heads

def test_losses_are_finite_and_every_parameter_learns():
    m = model()
    tokens, ids = batch()
    losses = m(tokens, ids, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"itc", "itm", "lm"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_encoder_is_bidirectional_decoder_is_causal_and_padding_is_ignored():
    m = model().eval()
    tokens, ids = batch()
    changed = ids.clone()
    changed[1:, 5] = 7
    assert not torch.allclose(m.encode_text(ids)[1:, 0], m.encode_text(changed)[1:, 0])
    torch.testing.assert_close(m.lm_logits(tokens, ids)[1:, :5], m.lm_logits(tokens, changed)[1:, :5])
    longer = torch.nn.functional.pad(ids, (0, 2), value=PAD)
    torch.testing.assert_close(m.itm_logits(tokens, longer), m.itm_logits(tokens, ids), atol=1e-5, rtol=1e-5)


def test_image_grounded_encoder_starts_with_enc_and_reads_the_image():
    m = model().eval()
    tokens, ids = batch()
    h = m.encode_text(ids, tokens)
    enc_ids = ids.clone()
    enc_ids[:, 0] = ENC
    x = m.decoder.embed(enc_ids) + m.decoder.positional_embedding[:ids.shape[1]]
    manual = m.decoder.ln_final(m.encoder(x, tokens, key_padding_mask=ids == PAD))
    torch.testing.assert_close(h, manual)
    assert not torch.allclose(m.itm_logits(tokens, ids), m.itm_logits(tokens.flip(0), ids))
    out, cross = m.encode_text(ids, tokens, return_attn=True)
    assert len(cross) == 2 and cross[0].shape == (4, 2, 7, 5)


def test_generate_and_bad_inputs():
    m = model().eval()
    tokens, ids = batch()
    out = m.generate(tokens, max_new_tokens=5)
    assert out.ids.shape[0] == 4 and out.ids.shape[1] <= 5
    with pytest.raises(ValueError, match="3 images and 4 captions"):
        m(tokens[:3], ids)
    with pytest.raises(ValueError, match="empty batch"):
        m(tokens[:0], ids[:0])
    with pytest.raises(ValueError, match="12 tokens exceed context_length=10"):
        m.itm_logits(tokens, torch.nn.functional.pad(ids, (0, 5), value=PAD))
    with pytest.raises(ValueError, match="image_tokens"):
        m.itm_logits(tokens[..., :5], ids)
    with pytest.raises(ValueError, match="enc_id"):
        BLIP(BLIPConfig(V, CTX, enc_id=V, dec_id=DEC, eot_id=EOT, pad_id=PAD))
