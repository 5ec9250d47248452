"""VideoBERT's pieces: BERT's masking, the VQ-VAE tokenizer for clips, the joint transformer and mask-predict."""

import pytest
import torch

from mmcourse.losses import bert_mask
from mmcourse.models.videobert import VideoBERT, VideoTokenizer


def test_bert_mask_chooses_p_of_the_positions_and_replaces_them_80_10_10():
    ids = torch.randint(5, 100, (400, 250), generator=torch.Generator().manual_seed(0))
    inputs, labels = bert_mask(ids, 1, 100, 0.15, generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # the rest is untouched
    masked = (inputs == 1) & chosen
    kept = (inputs == ids) & chosen
    random = chosen & ~masked & ~kept  # a random token that differs from the original (a few draw the same id)
    n = chosen.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    assert abs(kept.sum().item() / n - 0.1) < 0.01  # 10 % kept, plus the random draws that hit the original (1 %)
    assert abs(random.sum().item() / n - 0.1) < 0.01
    assert inputs[random].min() >= 0 and inputs[random].max() < 100


def test_bert_mask_takes_one_rate_per_row_and_respects_maskable():
    ids = torch.arange(40).view(4, 10)
    p = torch.tensor([0.0, 1.0, 1.0, 0.5])
    maskable = torch.ones(4, 10, dtype=torch.bool)
    maskable[2, :5] = False
    inputs, labels = bert_mask(ids, 99, 100, p, maskable=maskable, generator=torch.Generator().manual_seed(0))
    assert (labels[0] == -100).all() and torch.equal(inputs[0], ids[0])
    assert torch.equal(labels[1], ids[1])
    assert (labels[2, :5] == -100).all() and torch.equal(labels[2, 5:], ids[2, 5:])
    again = bert_mask(ids, 99, 100, p, maskable=maskable, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


@pytest.mark.parametrize("kw, match", [(dict(p=1.5), "probability"), (dict(p=torch.ones(3)), "one per row"),
                                       (dict(mask_id=-1), "mask_id"), (dict(vocab_size=0), "vocab_size")])
def test_bert_mask_bad_input(kw, match):
    args = dict(ids=torch.zeros(2, 5, dtype=torch.long), mask_id=3, vocab_size=10) | kw
    with pytest.raises((ValueError, TypeError), match=match):
        bert_mask(**args)


def tokenizer(**kw):
    torch.manual_seed(0)
    return VideoTokenizer(num_codes=16, dim=8, width=16, **kw)


@pytest.mark.parametrize("f", [1, 2])
def test_tokenizer_tokens_are_f_frames_by_4_by_4_pixels_and_decode_back_to_frames(f):
    tok = tokenizer(frames_per_token=f).eval()
    video = torch.rand(3, 3, 8, 16, 16)
    recon, q = tok(video)
    assert recon.shape == video.shape and q.codes.shape == (3, 8 // f, 4, 4, 1)
    assert torch.equal(tok.tokenize(video), q.codes)
    torch.testing.assert_close(tok.decode(q.codes), recon)  # the decoder sees only the codes' vectors
    with pytest.raises(ValueError, match="channels first"):
        tok(video.transpose(1, 2))  # frames as (B, T, 3, H, W)


def test_tokenizer_frames_per_token_is_1_or_2_and_divides_the_frames():
    with pytest.raises(ValueError, match="frames_per_token must be 1 or 2, got 3"):
        tokenizer(frames_per_token=3)
    with pytest.raises(ValueError, match="T a multiple of 2"):
        tokenizer(frames_per_token=2)(torch.rand(1, 3, 7, 16, 16))


def test_tokenize_never_moves_the_codebook():
    tok = tokenizer(reset_threshold=1.0).train()  # every code below its share: a forward would reset some
    video = torch.rand(2, 3, 8, 16, 16)
    before = {k: v.clone() for k, v in tok.quantizer.state_dict().items()}
    codes = tok.tokenize(video)
    assert all(torch.equal(v, tok.quantizer.state_dict()[k]) for k, v in before.items())
    assert torch.equal(codes, tok(video)[1].codes)  # the codes a forward chooses (before it moves any)
    assert not torch.equal(before["quantizers.0.codebook"], tok.quantizer.quantizers[0].codebook)


def test_tokenizer_learns_to_reconstruct():
    tok = tokenizer()
    video = torch.rand(4, 3, 4, 8, 8)
    opt = torch.optim.Adam(tok.parameters(), 3e-3)
    losses = []
    for _ in range(60):
        recon, q = tok(video)
        loss = torch.nn.functional.mse_loss(recon, video) + q.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert tok.quantizer.quantizers[0].codebook.grad is not None and tok.encoder[0].weight.grad.abs().sum() > 0


def bert(**kw):
    torch.manual_seed(0)
    return VideoBERT(num_codes=16, video_length=6, vocab_size=12, text_length=5, text_mask_id=11, groups=2,
                     width=16, layers=2, heads=2, **kw).eval()


def test_bert_reads_both_streams_in_both_directions():
    m = bert()
    codes, ids = torch.randint(16, (2, 6, 2)), torch.randint(11, (2, 5))
    v, t = m(codes, ids)
    assert v.shape == (2, 6, 2, 16) and t.shape == (2, 5, 12)  # each of a token's 2 codes over the 16 codes
    later = ids.clone()
    later[:, -1] = (later[:, -1] + 1) % 11
    assert not torch.allclose(m(codes, later)[1][:, 0], t[:, 0])  # the first text position sees the last one
    other = codes.clone()
    other[:, 0] = (other[:, 0] + 1) % 16
    assert not torch.allclose(m(other, ids)[1], t)  # text sees video
    assert not torch.allclose(m(codes, later)[0], v)  # video sees text
    for g in range(2):  # each group's code is read, through its own table
        one = codes.clone()
        one[:, 0, g] = (one[:, 0, g] + 1) % 16
        assert not torch.allclose(m(one, ids)[1], t)
    swapped = codes.flip(-1)
    assert not torch.allclose(m(swapped, ids)[1], t)  # code c in group 0 is not code c in group 1


def test_bert_ignores_padded_text():
    m = bert()
    codes, ids = torch.randint(16, (2, 6, 2)), torch.randint(11, (2, 5))
    pad = torch.tensor([[False, False, False, True, True]] * 2)
    v, t = m(codes, ids, pad)
    other = ids.clone()
    other[:, 3:] = 0
    v2, t2 = m(codes, other, pad)
    torch.testing.assert_close(v2, v)
    torch.testing.assert_close(t2[:, :3], t[:, :3])


def test_fill_text_in_one_round_is_the_argmax_on_all_masks_and_never_leaves_a_mask():
    m = bert()
    codes = torch.randint(16, (3, 6, 2))
    logits = m(codes, torch.full((3, 5), 11))[1]
    logits[..., 11] = -float("inf")
    assert torch.equal(m.fill_text(codes, rounds=1), logits.argmax(-1))
    filled = m.fill_text(codes, rounds=5)
    assert filled.shape == (3, 5) and not (filled == 11).any()
    with torch.no_grad():
        m.text_head.bias[3] = 100.0  # every position is sure of token 3, except where it must not be
    assert (m.fill_text(codes, rounds=3) == 3).all()


def test_fill_text_keeps_a_given_start_token_and_fills_the_rest():
    m = bert()
    codes = torch.randint(16, (3, 6, 2))
    with torch.no_grad():
        m.text_head.bias[4] = 100.0  # every position would say 4, the first one included
    filled = m.fill_text(codes, rounds=4, start_id=1)
    assert (filled[:, 0] == 1).all() and (filled[:, 1:] == 4).all()
    assert (m.fill_text(codes, rounds=1)[:, 0] == 4).all()  # without it, the first position is guessed too
    with pytest.raises(ValueError, match="rounds"):
        m.fill_text(codes, rounds=5, start_id=1)  # only 4 positions are left to fill
    with pytest.raises(ValueError, match="start_id"):
        m.fill_text(codes, start_id=12)


@pytest.mark.parametrize("call, match", [
    (lambda m: m(torch.randint(16, (2, 5, 2)), torch.zeros(2, 3, dtype=torch.long)), "codes"),
    (lambda m: m(torch.randint(16, (2, 6)), torch.zeros(2, 3, dtype=torch.long)), "codes"),  # one code per token
    (lambda m: m(torch.full((2, 6, 2), 17), torch.zeros(2, 3, dtype=torch.long)), r"codes: expected ids in \[0, 17\)"),
    (lambda m: m(torch.zeros(2, 6, 2, dtype=torch.long), torch.full((2, 3), 12)), "ids: expected ids"),
    (lambda m: m(torch.zeros(2, 6, 2, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long)), "text_length=5"),
    (lambda m: m.fill_text(torch.zeros(1, 6, 2, dtype=torch.long), rounds=0), "rounds"),
    (lambda m: VideoBERT(1, 6, 12, 5, 11), "num_codes"),
    (lambda m: VideoBERT(16, 6, 12, 5, 12), "text_mask_id"),
])
def test_bert_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(bert())


def test_bert_mask_on_tokens_of_several_codes_masks_a_token_whole():
    # the mask id 100 lies outside the vocabulary of random replacements [0, 100)
    ids = torch.randint(100, (300, 200, 2), generator=torch.Generator().manual_seed(0))
    inputs, labels = bert_mask(ids, 100, 100, 0.15, generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    assert torch.equal(chosen[..., 0], chosen[..., 1])  # both codes of a token, or neither
    assert abs(chosen[..., 0].float().mean().item() - 0.15) < 0.005
    masked = (inputs == 100).all(-1) & chosen[..., 0]
    assert torch.equal((inputs == 100) & chosen, masked[..., None].expand_as(ids))  # masked whole
    assert abs(masked.sum().item() / chosen[..., 0].sum().item() - 0.8) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])
    flat = bert_mask(ids[..., 0], 100, 100, 0.15, generator=torch.Generator().manual_seed(1))[1]
    assert torch.equal(flat != -100, chosen[..., 0])  # the same positions as for one code per token
