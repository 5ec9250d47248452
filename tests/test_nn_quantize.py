"""VectorQuantizer (VQ-VAE): against vector-quantize-pytorch, gradients, flattening, losses, perplexity, dead codes;
ProductQuantizer: one VectorQuantizer per group of channels."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmcourse.nn.quantize import ProductQuantizer, VectorQuantizer, perplexity

K, D = 16, 4
BETA = 0.4  # not the default 0.25, so a hard-coded β shows
SHAPES = {"video (B,D,T,H,W)": (2, D, 3, 4, 5), "image (B,D,H,W)": (2, D, 4, 5), "sequence (B,D,N)": (2, D, 7)}
# vector-quantize-pytorch's switch for each layout of channels-first features
LAYOUT = {"video (B,D,T,H,W)": {"accept_3d_fmap": True}, "image (B,D,H,W)": {"accept_image_fmap": True},
          "sequence (B,D,N)": {"channel_last": False}}


def make(ema=False, seed=0, **kw):
    """A quantizer with a spread-out N(0, 1) codebook (the default init is a tiny box every input is far from)."""
    torch.manual_seed(seed)
    vq = VectorQuantizer(K, D, BETA, ema=ema, **kw)
    with torch.no_grad():
        vq.codebook.copy_(torch.randn(K, D))
        if ema:
            vq.embed_sum.copy_(vq.codebook)
    return vq


def features(shape, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).requires_grad_(requires_grad)


def reference(ours, layout, ema):
    """vector-quantize-pytorch's VectorQuantize with our codebook (and, with EMA, our running sums) copied in.

    Non-EMA: a learnable codebook, no EMA, plain straight-through (its default for dim > 1 is the rotation trick),
    commitment weight β: its one loss mse(q, z) reaches the codebook and the encoder both, so its value is
    β · our commitment_loss. EMA: the same decay and eps; its cluster_size starts at ones and its embed_avg at the
    codebook, like our cluster_size and embed_sum. No k-means init, no dead-code replacement in either.
    """
    vqp = pytest.importorskip("vector_quantize_pytorch")
    mode = (dict(ema_update=True, decay=ours.decay, eps=ours.eps) if ema
            else dict(ema_update=False, learnable_codebook=True))
    theirs = vqp.VectorQuantize(D, K, commitment_weight=BETA, rotation_trick=False, kmeans_init=False,
                                threshold_ema_dead_code=0, **LAYOUT[layout], **mode)
    with torch.no_grad():
        theirs._codebook.embed.copy_(ours.codebook[None])
        if ema:
            theirs._codebook.embed_avg.copy_(ours.embed_sum[None])
            theirs._codebook.cluster_size.copy_(ours.cluster_size[None])
    return theirs


@pytest.mark.parametrize("layout", list(SHAPES))
def test_matches_reference_learnable_codebook(layout):
    """Same codes, quantized values, commitment loss, and gradients to the encoder and the codebook."""
    ours = make().train()
    theirs = reference(ours, layout, ema=False).train()
    z = features(SHAPES[layout], requires_grad=True)
    z_ref = z.detach().clone().requires_grad_()
    out = ours(z)
    q_ref, codes_ref, loss_ref, parts = theirs(z_ref, return_loss_breakdown=True)
    assert out.codes.shape == codes_ref.shape == (SHAPES[layout][0], *SHAPES[layout][2:])
    assert torch.equal(out.codes, codes_ref)
    assert len(out.codes.unique()) > 3  # a real assignment, not everything on one code
    torch.testing.assert_close(out.quantized, q_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.commitment_loss, parts.commitment)
    torch.testing.assert_close(BETA * out.commitment_loss, loss_ref)
    torch.testing.assert_close(ours.lookup(out.codes), theirs.get_codes_from_indices(codes_ref))
    w = features(SHAPES[layout], seed=2)
    (out.loss + (w * out.quantized).sum()).backward()
    (loss_ref + (w * q_ref).sum()).backward()
    torch.testing.assert_close(z.grad, z_ref.grad)  # straight-through + β · d commitment / dz
    # theirs: β · d mse(q, z) / de; ours: d codebook_loss / de, the same mse with weight 1
    torch.testing.assert_close(BETA * ours.codebook.grad, theirs._codebook.embed.grad[0])


@pytest.mark.parametrize("layout", list(SHAPES))
def test_matches_reference_ema_step(layout):
    """EMA: the same codes, outputs and loss, then after one training step the same codebook, cluster sizes and
    running sums."""
    ours = make(ema=True).train()
    theirs = reference(ours, layout, ema=True).train()
    z = features(SHAPES[layout])
    before = ours.codebook.clone()
    out = ours(z)
    q_ref, codes_ref, _, parts = theirs(z.clone(), return_loss_breakdown=True)
    assert torch.equal(out.codes, codes_ref)
    # the step's output and loss use the codes as chosen, before the update moved them
    torch.testing.assert_close(out.quantized, F.embedding(out.codes, before).movedim(-1, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.quantized, q_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.commitment_loss, parts.commitment)
    assert not torch.equal(ours.codebook, before)
    torch.testing.assert_close(ours.codebook, theirs.codebook)
    torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size[0])
    torch.testing.assert_close(ours.embed_sum, theirs._codebook.embed_avg[0])
    ours.eval()  # after the step, both quantize a fresh batch alike
    theirs.eval()
    z = features(SHAPES[layout], seed=3)
    q_ref, codes_ref, _ = theirs(z)
    out = ours(z)
    assert torch.equal(out.codes, codes_ref)
    torch.testing.assert_close(out.quantized, q_ref)


def test_matches_reference_ema_many_steps():
    """decay 0.5 for 20 steps: unused codes' cluster sizes fall to ~1e-6, where the Laplace smoothing decides."""
    layout = "image (B,D,H,W)"
    ours = make(ema=True, decay=0.5).train()
    theirs = reference(ours, layout, ema=True).train()
    for step in range(20):
        z = features(SHAPES[layout], seed=10 + step).abs() + 1  # one corner of the space: some codes never win
        out = ours(z)
        _, codes_ref, _ = theirs(z.clone())
        assert torch.equal(out.codes, codes_ref), step
    assert ours.cluster_size.min() < 1e-4
    torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size[0])
    torch.testing.assert_close(ours.codebook, theirs.codebook)


def test_reset_step_outputs_the_codes_it_chose():
    """Code 2 is dead (usage 0) but the nearest code of one vector: that vector still quantizes to code 2's value."""
    vq = VectorQuantizer(4, 2, reset_threshold=0.5).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
        vq.usage.copy_(torch.tensor([0.5, 0.5, 0.0, 0.0]))
    z = torch.tensor([[0.1, 0.2], [9.8, 0.1], [0.2, 9.9], [0.0, -0.1]]).t()[None, :, :, None]  # (1, 2, 4, 1)
    torch.manual_seed(0)
    out = vq(z)
    assert out.codes.flatten().tolist() == [0, 1, 2, 0]
    assert (vq.codebook[2] != torch.tensor([0.0, 10.0])).any()  # it was reset ...
    torch.testing.assert_close(out.quantized[0, :, 2, 0], torch.tensor([0.0, 10.0]))  # ... after quantizing


def test_codebook_gets_gradient_only_on_used_codes():
    """Default mode: d codebook_loss / e_k = 2/(N·D) Σ_{i→k} (e_k − z_i); zero for a code nobody picked."""
    vq = make()
    z = features((1, D, 2, 3))  # 6 vectors, at most 6 of the 16 codes used
    out = vq(z)
    out.loss.backward()
    flat = z.movedim(1, -1).reshape(-1, D)
    codes = out.codes.flatten()
    used = torch.zeros(K, dtype=torch.bool)
    used[codes] = True
    assert 0 < used.sum() < K
    expected = torch.zeros(K, D).index_add_(0, codes, vq.codebook.detach()[codes] - flat) * 2 / flat.numel()
    torch.testing.assert_close(vq.codebook.grad, expected)
    assert (vq.codebook.grad[used].norm(dim=1) > 0).all() and (vq.codebook.grad[~used] == 0).all()


def test_ema_codebook_gets_no_gradient_but_moves():
    vq = make(ema=True).train()
    assert list(vq.parameters()) == [] and not vq.codebook.requires_grad
    before = {name: b.clone() for name, b in vq.named_buffers()}
    z = features((2, D, 3, 4), requires_grad=True)
    out = vq(z)
    out.loss.backward()
    assert vq.codebook.grad is None and z.grad is not None and z.grad.abs().sum() > 0
    for name in ("codebook", "cluster_size", "embed_sum", "usage"):
        assert not torch.equal(getattr(vq, name), before[name]), name


@pytest.mark.parametrize("ema", [False, True])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_encoder_gets_straight_through_gradient(layout, ema):
    """d Σ(w · quantized) / dz = w exactly: the quantizer is the identity for the backward pass."""
    vq = make(ema=ema).train()
    z = features(SHAPES[layout], requires_grad=True)
    w = features(SHAPES[layout], seed=2)
    (w * vq(z).quantized).sum().backward()
    assert torch.equal(z.grad, w)


@pytest.mark.parametrize("layout", list(SHAPES))
def test_each_position_keeps_its_vector(layout):
    """z built from known codes at every (t, h, w): the codes come back and quantized == z."""
    vq = make().eval()
    B, _, *rest = SHAPES[layout]
    codes = torch.randint(K, (B, *rest), generator=torch.Generator().manual_seed(3))
    z = vq.lookup(codes).detach()
    assert z.shape == SHAPES[layout]
    last = tuple(r - 1 for r in rest)
    torch.testing.assert_close(z[(1, slice(None), *last)], vq.codebook[codes[(1, *last)]])
    out = vq(z)
    assert torch.equal(out.codes, codes)
    assert torch.equal(out.quantized, z)
    assert out.commitment_loss == 0


def test_flattening_channels_first_directly_mixes_positions():
    """z.view(-1, D) on (B, D, T, H, W) memory cuts rows across positions: wrong codes; channels last first is right."""
    vq = make().eval()
    codes = torch.randint(K, (2, 3, 4, 5), generator=torch.Generator().manual_seed(4))
    z = vq.lookup(codes).detach().contiguous()  # channels-first memory, as a conv encoder returns it
    right = vq.nearest(z.movedim(1, -1).reshape(-1, D))
    wrong = vq.nearest(z.view(-1, D))
    assert torch.equal(right, codes.flatten())
    assert (wrong != codes.flatten()).float().mean() > 0.5


@pytest.mark.parametrize("layout", list(SHAPES))
def test_losses_default(layout):
    """codebook_loss = mse(e, sg z), commitment_loss = mse(z, sg e), loss = codebook + β commitment, re-derived."""
    vq = make().train()
    z = features(SHAPES[layout], requires_grad=True)
    out = vq(z)
    e = vq.codebook.detach().numpy()[out.codes.numpy()]  # (B, *rest, D)
    zl = np.moveaxis(z.detach().numpy(), 1, -1)
    mse = float(((e - zl) ** 2).mean())
    assert out.codebook_loss.item() == pytest.approx(mse, rel=1e-6)
    assert out.commitment_loss.item() == pytest.approx(mse, rel=1e-6)
    torch.testing.assert_close(out.loss, out.codebook_loss + BETA * out.commitment_loss)
    assert torch.autograd.grad(out.codebook_loss, z, retain_graph=True, allow_unused=True)[0] is None
    assert torch.autograd.grad(out.commitment_loss, vq.codebook, allow_unused=True)[0] is None


def test_losses_ema():
    """EMA: no codebook term (the codes learn by averaging), loss = β · commitment."""
    vq = make(ema=True).eval()
    z = features(SHAPES["image (B,D,H,W)"], requires_grad=True)
    out = vq(z)
    e = vq.lookup(out.codes)
    assert out.codebook_loss.item() == 0
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(z, e))
    torch.testing.assert_close(out.loss, BETA * out.commitment_loss)
    assert out.loss.requires_grad


def test_perplexity():
    assert perplexity(torch.full((3, 5), 7), K).item() == pytest.approx(1.0)
    assert perplexity(torch.arange(K).repeat(3), K).item() == pytest.approx(K, rel=1e-6)
    codes = torch.randint(6, (200,), generator=torch.Generator().manual_seed(5))  # 6 of 16 codes, unevenly
    p = np.bincount(codes.numpy(), minlength=K) / codes.numel()
    entropy = -sum(pk * math.log(pk) for pk in p if pk > 0)
    assert perplexity(codes.view(10, 20), K).item() == pytest.approx(math.exp(entropy), rel=1e-6)
    out = make().eval()(features((2, D, 4, 5)))
    assert out.perplexity.item() == pytest.approx(perplexity(out.codes, K).item())


def two_cluster_batch(step):
    """(2, 2, 4, 4): every vector near (−3, 0) or (3, 0), the places of codes 0 and 1 below."""
    g = torch.Generator().manual_seed(100 + step)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])[torch.randint(2, (2, 4, 4), generator=g)]
    return (centres + torch.randn(2, 4, 4, 2, generator=g)).movedim(-1, 1)


def dead_code_quantizer(reset_threshold, ema):
    """8 codes in 2-D: codes 0 and 1 on the two clusters, the other 6 far away, so the data only ever uses 2."""
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, ema=ema, reset_threshold=reset_threshold, usage_decay=0.5)
    with torch.no_grad():
        vq.codebook.copy_(torch.full((8, 2), 50.0))
        vq.codebook[:2] = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
        if ema:
            vq.embed_sum.copy_(vq.codebook)
    return vq


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_are_reseeded_from_the_batch(ema):
    """Codes whose running share falls under threshold / K become vectors of the batch, and get used."""
    vq = dead_code_quantizer(0.5, ema).train()
    resets = 0
    for step in range(6):
        z = two_cluster_batch(step)
        flat = z.movedim(1, -1).reshape(-1, 2)
        counts = torch.bincount(vq.nearest(flat), minlength=8).float()
        usage = vq.usage + (counts / len(flat) - vq.usage) * (1 - vq.usage_decay)  # this step's running share
        dead = usage < 0.5 / 8
        before = vq.codebook.clone()
        vq(z)
        for k in dead.nonzero().flatten():
            assert (vq.codebook[k] == flat).all(1).any(), f"step {step}: code {k} is not a batch vector"
            assert vq.usage[k] == 1 / 8
            if ema:
                assert torch.equal(vq.embed_sum[k], vq.codebook[k]) and vq.cluster_size[k] == 1
        if not ema:  # no optimizer here: only a reset moves a code
            assert torch.equal(vq.codebook[~dead], before[~dead])
        resets += int(dead.sum())
    assert resets >= 6


@pytest.mark.parametrize("ema", [False, True])
def test_reset_raises_perplexity(ema):
    def run(reset_threshold):
        vq = dead_code_quantizer(reset_threshold, ema).train()
        return [vq(two_cluster_batch(step)).perplexity.item() for step in range(12)]

    without, with_reset = run(None), run(0.5)
    assert max(without) <= 2 + 1e-5  # two codes at most
    assert np.mean(with_reset[-6:]) > 4 and with_reset[-1] > without[-1] + 2


@pytest.mark.parametrize("ema", [False, True])
def test_eval_mode_changes_nothing(ema):
    """Eval: no reset, no EMA step, no usage update, even with every unused code already dead."""
    vq = dead_code_quantizer(0.5, ema)
    with torch.no_grad():
        vq.usage.copy_(torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0]))
    before = {name: b.clone() for name, b in vq.named_buffers()} | {"codebook": vq.codebook.detach().clone()}
    vq.eval()(two_cluster_batch(0))
    for name, value in before.items():
        assert torch.equal(getattr(vq, name), value), name
    vq.train()(two_cluster_batch(0))  # the same call while training does change them
    assert not torch.equal(vq.codebook, before["codebook"]) and not torch.equal(vq.usage, before["usage"])


def test_bad_input_errors():
    vq = make()
    with pytest.raises(ValueError, match=r"\(B, 4, \.\.\.\) with 4 channels.*got shape \(2, 3, 5, 5\)"):
        vq(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"at least one feature vector, got shape \(0, 4, 5, 5\)"):
        vq(torch.randn(0, 4, 5, 5))
    with pytest.raises(ValueError, match=r"with 4 channels"):
        vq(torch.randn(4))
    with pytest.raises(TypeError, match=r"z: expected a floating-point tensor"):
        vq(torch.ones(2, 4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"num_codes: expected an int >= 2, got 1"):
        VectorQuantizer(1, 4)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\), got \[0, 16\]"):
        vq.lookup(torch.tensor([[0, 16]]))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\), got \[-1, 3\]"):
        vq.lookup(torch.tensor([[-1, 3]]))
    with pytest.raises(TypeError, match=r"codes: expected an integer tensor"):
        vq.lookup(torch.tensor([[0.0, 1.0]]))


def test_reset_seeds_where_the_codebook_fits_worst():
    """k-means++ seeding: 98 vectors sit on code 0, 2 lie far from every code; the dead code becomes one of the 2."""
    vq = VectorQuantizer(2, 2, reset_threshold=0.5).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0]]))
        vq.usage.copy_(torch.tensor([1.0, 0.0]))
    far = torch.tensor([[5.0, -5.0], [-6.0, 4.0]])
    flat = torch.cat([torch.zeros(98, 2), far])
    for seed in range(20):
        vq.usage.copy_(torch.tensor([1.0, 0.0]))
        vq.codebook.data[1] = torch.tensor([50.0, 50.0])
        torch.manual_seed(seed)
        vq(flat.t()[None])  # (1, 2, 100)
        assert (vq.codebook[1] == far).all(1).any(), f"seed {seed}: the dead code became {vq.codebook[1].tolist()}"


@pytest.mark.parametrize("layout", list(SHAPES))
def test_product_quantizer_is_one_quantizer_per_group_of_channels(layout):
    """Group g's codes, values and losses are those of its own VectorQuantizer on channels [g D/G, (g+1) D/G)."""
    torch.manual_seed(0)
    pq = ProductQuantizer(K, D, groups=2, beta=BETA).train()
    with torch.no_grad():
        for vq in pq.quantizers:
            vq.codebook.copy_(torch.randn(K, D // 2))
    z = features(SHAPES[layout], requires_grad=True)
    out = pq(z)
    assert out.codes.shape == (z.shape[0], *z.shape[2:], 2) and out.perplexity.shape == (2,)
    parts = [vq(part) for vq, part in zip(pq.quantizers, z.chunk(2, 1), strict=True)]
    for g, q in enumerate(parts):
        assert torch.equal(out.codes[..., g], q.codes)
        torch.testing.assert_close(out.quantized[:, g * D // 2:(g + 1) * D // 2], q.quantized)
        torch.testing.assert_close(out.perplexity[g], q.perplexity)
    torch.testing.assert_close(out.loss, (parts[0].loss + parts[1].loss) / 2)
    e = torch.cat([vq.codebook[out.codes[..., g]] for g, vq in enumerate(pq.quantizers)], -1)  # (B, *rest, D)
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(z.movedim(1, -1), e))  # the mean over all D channels
    assert torch.equal(pq.encode(z), out.codes)
    torch.testing.assert_close(pq.lookup(out.codes), out.quantized)
    (out.quantized.sum() + out.loss).backward()
    assert all(vq.codebook.grad.abs().sum() > 0 for vq in pq.quantizers)


def test_product_quantizer_bad_input():
    with pytest.raises(ValueError, match="divisor of dim=4"):
        ProductQuantizer(K, D, groups=3)
    pq = ProductQuantizer(K, D, groups=2)
    with pytest.raises(ValueError, match="4 channels"):
        pq(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, \.\.\., 2\)"):
        pq.lookup(torch.zeros(2, 5, dtype=torch.long))
