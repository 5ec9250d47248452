"""Chapter 08 exercises: vector quantization with both VQ-VAE loss terms and the straight-through estimator
(build); the study guide's quantization layer for channels-first video features (fix); a codebook size and a
dead-code reset for a perplexity bar (experiment); four questions (quiz)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register, register_quiz
from mmcourse.nn import VectorQuantizer, perplexity


def _nearest(flat, codebook):
    """The index of each row's nearest code, by squared Euclidean distance ‖z‖² − 2 z·e + ‖e‖²."""
    d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    return d.argmin(1)


def _codebook(K, D, g):
    """K codes in D dimensions with norms from 0.5 to 2 (so the largest dot product is often not the nearest)."""
    return torch.randn(K, D, generator=g) * (0.5 + 1.5 * torch.rand(K, 1, generator=g))


def _clear_of_ties(flat, codebook, gap=1e-3):
    """Each row's nearest code is nearer than the second nearest by more than `gap` (squared distance)."""
    d = torch.cdist(flat.double(), codebook.double()).pow(2)
    two = d.topk(2, dim=1, largest=False).values
    return (two[:, 1] - two[:, 0]) > gap


def _grads(out, inputs, what, hint):
    """d out / d inputs, zeros where `out` does not reach an input; a clear failure when nothing has a gradient."""
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        fail(f"{what}: no gradient flows through it", "a tensor with a gradient (requires_grad=True)",
             "a tensor with no gradient" if isinstance(out, torch.Tensor) else out, hint)
    grads = torch.autograd.grad(out, inputs, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(x) if gr is None else gr for gr, x in zip(grads, inputs, strict=True)]


FLAT_HINTS = ("each vector's code is the index of its nearest code: the smallest squared distance ‖z − e‖² "
              "(argmin), not the largest dot product",
              "quantized holds each vector's nearest code, (N, D) like z")


def _expect_vq(got, z, codebook, beta, reference, case, hints=FLAT_HINTS):
    """The three outputs of a quantizer, and the gradients they carry to z and to the codebook, against
    `reference`'s. `z` and `codebook` are leaves with requires_grad=True; `hints` for the codes and the values."""
    if not (isinstance(got, tuple) and len(got) == 3):
        fail(f"{case}: return a triple (quantized, codes, loss)", "a tuple of three tensors",
             type(got).__name__ if not isinstance(got, tuple) else f"a tuple of {len(got)}")
    quantized, codes, loss = got
    want_q, want_codes, want_loss = reference(z, codebook, beta)
    expect_equal(codes, want_codes, f"{case}: the codes", hints[0])
    expect_close(quantized, want_q.detach(), f"{case}: the quantized values", hints[1])
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        loss = loss.reshape(())
    expect_close(loss, want_loss.detach(), f"{case}: the loss",
                 "mse(e, z.detach()) + beta · mse(z, e.detach()): the codebook term plus beta times the "
                 "commitment term")

    upstream = torch.randn(z.shape, generator=torch.Generator().manual_seed(80)).to(z.device)
    straight = "quantized = z + (e − z).detach(): the value of e, the gradient of z"
    got_z, got_cb = _grads((quantized * upstream).sum(), [z, codebook], f"{case}: quantized", straight)
    want_z, _ = _grads((want_q * upstream).sum(), [z, codebook], "", "")
    expect_close(got_z, want_z, f"{case}: the gradient reaching z through quantized (the decoder's gradient)",
                 "straight-through: the backward pass treats quantization as the identity, so z receives the "
                 f"decoder's gradient unchanged. {straight}", atol=1e-6)
    expect_close(got_cb, torch.zeros_like(codebook), f"{case}: the gradient reaching the codebook through quantized",
                 f"the decoder's gradient goes to the encoder only; the codebook learns from its loss term. {straight}",
                 atol=1e-6)

    terms = "loss = mse(e, z.detach()) + beta · mse(z, e.detach())"
    got_z, got_cb = _grads(loss, [z, codebook], f"{case}: the loss", terms)
    want_z, want_cb = _grads(want_loss, [z, codebook], "", "")
    expect_close(got_cb, want_cb, f"{case}: the loss's gradient on the codebook",
                 "the codebook term mse(e, z.detach()), weight 1, is what moves the codes towards the vectors that "
                 f"chose them; without it the codebook never learns. {terms}", atol=1e-6)
    expect_close(got_z, want_z, f"{case}: the loss's gradient on z (the commitment term)",
                 f"the commitment term beta · mse(z, e.detach()) pulls z towards its code, and only z. {terms}",
                 atol=1e-6)


# ---------------------------------------------------------------- 08.quantize
def quantize(z, codebook, beta):
    """Reference: z (N, D), codebook (K, D) -> (z + sg[e − z], argmin_k ‖z − e_k‖², mse(e, sg z) + β mse(z, sg e))."""
    codes = _nearest(z.detach(), codebook.detach())
    e = codebook[codes]
    loss = F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())
    return z + (e - z).detach(), codes, loss


def _quantize_one_term(z, codebook, beta):
    """keeps only the detached-target term mse(z, e.detach()): the codebook receives no gradient and never learns"""
    codes = _nearest(z.detach(), codebook.detach())
    e = codebook[codes]
    return z + (e - z).detach(), codes, F.mse_loss(z, e.detach())


def _quantize_commitment_scaled(z, codebook, beta):
    # (1 + β) · mse(z, sg e): the loss's value is right, but the codebook gets no gradient. Its outputs equal the
    # reference's, so it has no docstring (the grader names a mistake only from outputs); the gradient check's hint
    # names it.
    codes = _nearest(z.detach(), codebook.detach())
    e = codebook[codes]
    return z + (e - z).detach(), codes, (1 + beta) * F.mse_loss(z, e.detach())


def _quantize_beta_swapped(z, codebook, beta):
    # β on the codebook term and 1 on the commitment term: the same value (both terms are the same mse), the wrong
    # gradients. No docstring, as above.
    codes = _nearest(z.detach(), codebook.detach())
    e = codebook[codes]
    return z + (e - z).detach(), codes, beta * F.mse_loss(e, z.detach()) + F.mse_loss(z, e.detach())


def _quantize_no_straight_through(z, codebook, beta):
    # returns e itself: the right values, but z gets only the commitment gradient, never the decoder's. No
    # docstring, as above.
    codes = _nearest(z.detach(), codebook.detach())
    e = codebook[codes]
    return e, codes, F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())


def _quantize_dot_product(z, codebook, beta):
    """picks the code with the largest dot product z·e instead of the nearest: long codes win"""
    codes = (z.detach() @ codebook.detach().t()).argmax(1)
    e = codebook[codes]
    return z + (e - z).detach(), codes, F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())


def _quantize_argmax(z, codebook, beta):
    """takes the argmax of the distances: the farthest code, not the nearest"""
    codes = torch.cdist(z.detach(), codebook.detach()).argmax(1)
    e = codebook[codes]
    return z + (e - z).detach(), codes, F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())


@register("08.quantize", quantize,
          [_quantize_one_term, _quantize_commitment_scaled, _quantize_beta_swapped, _quantize_no_straight_through,
           _quantize_dot_product, _quantize_argmax])
def _test_quantize(fn):
    g = torch.Generator().manual_seed(81)
    n = 0
    for device in devices():
        for N, D, K, beta in [(12, 4, 6, 0.25), (9, 3, 5, 1.0), (20, 8, 12, 0.5), (6, 2, 3, 0.1)]:
            codebook = _codebook(K, D, g)
            z = 1.2 * torch.randn(N, D, generator=g)
            z = z[_clear_of_ties(z, codebook)]
            z = z.to(device).requires_grad_()
            codebook = codebook.to(device).requires_grad_()
            case = f"z {tuple(z.shape)}, codebook ({K}, {D}), beta {beta}"
            _expect_vq(fn(z, codebook, beta), z, codebook, beta, quantize, case)
            n += 1
    return n


# ---------------------------------------------------------------- 08.vq_layer (fix)
def vq_layer(z, codebook, beta):
    """Reference: channels-first z (B, D, T, H, W) -> quantized (B, D, T, H, W), codes (B, T, H, W), loss: channels
    moved last before flattening, both loss terms, straight-through, channels moved back."""
    z_last = z.movedim(1, -1)  # (B, T, H, W, D): each position's vector contiguous
    flat = z_last.reshape(-1, z.shape[1])
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes].view(z_last.shape)
    loss = F.mse_loss(e, z_last.detach()) + beta * F.mse_loss(z_last, e.detach())
    return (z_last + (e - z_last).detach()).movedim(-1, 1), codes.view(z_last.shape[:-1]), loss


def _vq_study_guide(z, codebook, beta):
    """the study guide's layer as given: flattens with z.view(-1, D) and keeps one loss term, mse(z, e.detach())

    z.view(-1, D) on channels-first features cuts each row across positions; without the codebook term the codebook
    never learns."""
    B, D = z.shape[:2]
    flat = z.view(-1, D)
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes]
    loss = F.mse_loss(flat, e.detach())
    return (flat + (e - flat).detach()).view(z.shape), codes.view(B, *z.shape[2:]), loss


def _vq_view(z, codebook, beta):
    """flattens with z.view(-1, D) on channels-first features: each row mixes channels with time and space"""
    B, D = z.shape[:2]
    flat = z.view(-1, D)
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes]
    loss = F.mse_loss(e, flat.detach()) + beta * F.mse_loss(flat, e.detach())
    return (flat + (e - flat).detach()).view(z.shape), codes.view(B, *z.shape[2:]), loss


def _vq_one_term(z, codebook, beta):
    """keeps only the detached-target term mse(z, e.detach()): the codebook receives no gradient and never learns"""
    z_last = z.movedim(1, -1)
    flat = z_last.reshape(-1, z.shape[1])
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes].view(z_last.shape)
    loss = F.mse_loss(z_last, e.detach())
    return (z_last + (e - z_last).detach()).movedim(-1, 1), codes.view(z_last.shape[:-1]), loss


def _vq_channels_left_last(z, codebook, beta):
    """never moves the channels back: quantized comes out (B, T, H, W, D)"""
    quantized, codes, loss = vq_layer(z, codebook, beta)
    return quantized.movedim(1, -1), codes, loss


def _vq_viewed_back(z, codebook, beta):
    """views the channels-last result straight into z's shape instead of moving the channels back: values scrambled"""
    z_last = z.permute(0, 2, 3, 4, 1)
    flat = z_last.reshape(-1, z.shape[1])
    codes = _nearest(flat.detach(), codebook.detach())
    e = codebook[codes].view(z_last.shape)
    loss = F.mse_loss(e, z_last.detach()) + beta * F.mse_loss(z_last, e.detach())
    return (flat + (codebook[codes] - flat).detach()).view(z.shape), codes.view(z_last.shape[:-1]), loss


def _vq_flat_codes(z, codebook, beta):
    """returns the codes flat, (B·T·H·W,), instead of one per position (B, T, H, W)"""
    quantized, codes, loss = vq_layer(z, codebook, beta)
    return quantized, codes.flatten(), loss


VIDEO_HINTS = ("one code per position (B, T, H, W), the nearest to that position's D-vector z[b, :, t, h, w]: move "
               "the channels last (z.movedim(1, -1)) before flattening; z.view(-1, D) on channels-first features "
               "cuts each row across positions",
               "quantized is channels-first like z, (B, D, T, H, W): move the channels back with .movedim(-1, 1); "
               "a view of the channels-last result into z's shape scrambles them")


@register("08.vq_layer", vq_layer,
          [_vq_study_guide, _vq_view, _vq_one_term, _vq_channels_left_last, _vq_viewed_back, _vq_flat_codes])
def _test_vq_layer(fn):
    g = torch.Generator().manual_seed(82)
    n = 0
    for device in devices():
        for (B, D, T, H, W), K, beta in [((2, 4, 3, 2, 2), 6, 0.25), ((1, 3, 2, 3, 4), 5, 0.5),
                                         ((3, 2, 2, 2, 3), 4, 1.0)]:
            codebook = _codebook(K, D, g)
            z = 1.2 * torch.randn(B, D, T, H, W, generator=g)  # channels-first memory, as a 3-D conv returns it
            while not _clear_of_ties(z.movedim(1, -1).reshape(-1, D), codebook).all():
                z = 1.2 * torch.randn(B, D, T, H, W, generator=g)
            z = z.to(device).requires_grad_()
            codebook = codebook.to(device).requires_grad_()
            case = f"z {tuple(z.shape)} (B, D, T, H, W), codebook ({K}, {D}), beta {beta}"
            _expect_vq(fn(z, codebook, beta), z, codebook, beta, vq_layer, case, VIDEO_HINTS)
            n += 1
    return n


# ---------------------------------------------------------------- 08.reset_settings (experiment)
EXPERIMENT = dict(clusters=48, dim=8, offset=4.0, spread=1.0, noise=0.1, steps=400, batch=256, lr=1e-2,
                  held_out=4096, bar=40.0, max_codes=64)


@functools.cache
def experiment_data() -> torch.Tensor:
    """The centres of 48 well-separated Gaussian clusters in 8-D, grouped around a point 4 away from the origin:
    the codebook's initial codes, all within 1/K of the origin, see every cluster in about the same direction."""
    g = torch.Generator().manual_seed(800)
    direction = F.normalize(torch.randn(EXPERIMENT["dim"], generator=g), dim=0)
    return EXPERIMENT["offset"] * direction + EXPERIMENT["spread"] * torch.randn(EXPERIMENT["clusters"],
                                                                                  EXPERIMENT["dim"], generator=g)


def _draw(n: int, g: torch.Generator) -> torch.Tensor:
    centres = experiment_data()
    which = torch.randint(len(centres), (n,), generator=g)
    return centres[which] + EXPERIMENT["noise"] * torch.randn(n, centres.shape[1], generator=g)


def run_reset(num_codes: int, beta: float = 0.25, reset_threshold: float | None = None) -> dict[str, float]:
    """A bare VectorQuantizer(num_codes, 8, beta, reset_threshold=...) — a learnable codebook, no encoder — trained
    400 steps (Adam, lr 0.01, batches of 256 points of the 48 clusters, fixed draws) on its own loss; the perplexity of
    the codes of 4 096 held-out points, and how many codes they use. Under a second on a CPU."""
    held = _draw(EXPERIMENT["held_out"], torch.Generator().manual_seed(801))
    g = torch.Generator().manual_seed(802)
    with torch.random.fork_rng(devices=[]):  # the initial codes and the resets draw from torch's global generator
        torch.manual_seed(0)
        vq = VectorQuantizer(num_codes, EXPERIMENT["dim"], beta, reset_threshold=reset_threshold).train()
        optimizer = torch.optim.Adam(vq.parameters(), lr=EXPERIMENT["lr"])
        for _ in range(EXPERIMENT["steps"]):
            loss = vq(_draw(EXPERIMENT["batch"], g)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    codes = vq.eval().encode(held)
    return {"perplexity": perplexity(codes, num_codes).item(), "codes used": len(codes.unique())}


_SETTINGS = ("num_codes", "beta", "reset_threshold")


def _settings_reference():
    return {"num_codes": 64, "beta": 0.25, "reset_threshold": 0.1}


def _settings_no_reset():
    """no reset: the codes that no point picks at the start never move, and a few codes take every cluster"""
    return {"num_codes": 64, "beta": 0.25, "reset_threshold": None}


def _settings_tiny_threshold():
    """a threshold so small that an unused code's running share never falls below it within the training"""
    return {"num_codes": 64, "beta": 0.25, "reset_threshold": 1e-4}


def _settings_small_codebook():
    """16 codes: even all used equally, the perplexity is at most 16"""
    return {"num_codes": 16, "beta": 0.25, "reset_threshold": 0.1}


def _settings_over_the_cap():
    """128 codes, over the cap of 64"""
    return {"num_codes": 128, "beta": 0.25, "reset_threshold": 0.1}


@register("08.reset_settings", _settings_reference,
          [_settings_no_reset, _settings_tiny_threshold, _settings_small_codebook, _settings_over_the_cap])
def _test_reset_settings(fn):
    settings = fn()
    want = '{"num_codes": int, "beta": float, "reset_threshold": float or None}'
    if not isinstance(settings, dict) or set(settings) != set(_SETTINGS):
        fail("my_reset_settings() must return the three settings", want,
             sorted(settings) if isinstance(settings, dict) else settings)
    K, beta, threshold = (settings[k] for k in _SETTINGS)
    cap, bar = EXPERIMENT["max_codes"], EXPERIMENT["bar"]
    if isinstance(K, bool) or not isinstance(K, int) or K < 2:
        fail("num_codes must be the number of codes", "an int ≥ 2", K)
    if K > cap:
        fail(f"num_codes {K} is over the cap", f"num_codes ≤ {cap}", K,
             f"the point is to use the codes you have: reach the bar with at most {cap}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        fail("beta must be the commitment weight", "a number ≥ 0", beta)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0 <= threshold <= 1):
        fail("reset_threshold must be None (no reset) or a share", "None or a number in [0, 1]", threshold)
    got = run_reset(K, float(beta), None if threshold is None else float(threshold))
    if got["perplexity"] < bar:
        fail(f"num_codes {K}, beta {beta:g}, reset_threshold {threshold}: the held-out points' codes have "
             f"perplexity {got['perplexity']:.1f} ({got['codes used']} of {K} codes used)", f"perplexity ≥ {bar:g}",
             round(got["perplexity"], 1),
             f"the perplexity of {K} codes is at most {K}: take more codes" if K < bar else
             "without a reset, the codes no point picks at the start never move; a reset replaces a code by a vector "
             "of the batch once its running share falls below reset_threshold / num_codes, and an unused code's "
             "share shrinks by only 1 % a step")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("08.quiz_commitment", "In the VQ-VAE loss mse(e, sg[z]) + β · mse(z, sg[e]), what does the commitment "
              "term β · mse(z, sg[e]) prevent?", "b",
              "the codebook term moves only the codes (z is detached there), and the decoder's gradient reaches z "
              "straight through, with nothing tying z to its code: the encoder's outputs can drift away from the "
              "codebook and grow without bound while the codes chase them. The commitment term pulls z back to its "
              "code.",
              choices={"a": "the codes drifting away from the encoder's outputs",
                       "b": "the encoder's outputs drifting away from the codes, growing without bound",
                       "c": "two codes becoming identical",
                       "d": "the decoder ignoring the quantized vectors"},
              wrong={"a": "that is the codebook term's job: mse(e, sg[z]) moves the codes towards the encoder's "
                          "outputs.",
                     "c": "nothing in the loss keeps codes apart; identical or unused codes are what a reset repairs.",
                     "d": "the decoder sees only the quantized vectors; the commitment term does not reach it."})
register_quiz("08.quiz_straight_through", "argmin has no useful gradient. Why can the encoder still be trained "
              "through the quantizer?", "c",
              "quantized = z + sg[e − z] has the value of e and the gradient of z: the backward pass treats "
              "quantization as the identity and copies the decoder's gradient at e to z. That is a good "
              "approximation because the commitment term keeps z close to e, where the gradient at e is nearly the "
              "gradient at z.",
              choices={"a": "argmin is replaced by a softmax over the distances in the backward pass",
                       "b": "the codebook term's gradient reaches the encoder",
                       "c": "the decoder's gradient at the quantized vector is copied to the encoder's output, "
                            "as if quantization were the identity",
                       "d": "the encoder is trained by the commitment term alone"},
              wrong={"a": "that is a relaxation (as in Gumbel-softmax quantizers); VQ-VAE's straight-through "
                          "estimator keeps the hard argmin.",
                     "b": "the codebook term detaches z: its gradient reaches the codes only.",
                     "d": "the commitment term only pulls z towards its code; without the decoder's gradient the "
                          "encoder would learn nothing about reconstruction."})
register_quiz("08.quiz_perplexity_shares", "A codebook's codes are used with shares 1/2, 1/4 and 1/4 (the rest "
              "never). What is its perplexity exp(H)? (2 decimals)", 2 ** 1.5,
              "H = ½ ln 2 + ¼ ln 4 + ¼ ln 4 = 1.5 ln 2, so exp(H) = 2^1.5 ≈ 2.83: fewer than the 3 codes used, "
              "because one of them takes half the vectors.", tolerance=0.01,
              wrong={3.0: "3 is the number of codes used; perplexity counts them by their shares, and uneven shares "
                          "count less.",
                     1.5: "1.5 is the entropy in bits; perplexity is 2^H in bits (or e^H in nats)."})
register_quiz("08.quiz_perplexity_dead", "A codebook of 512 codes: 32 of them are used equally often, the other 480 "
              "never. What is its perplexity?", 32.0,
              "H = ln 32 over 32 equal shares, so the perplexity is 32: the number of codes in effective use. The "
              "480 dead codes count for nothing.", tolerance=0.01,
              wrong={512.0: "512 is the codebook's size, reached only when every code is used equally.",
                     5.0: "5 is the entropy in bits (log₂ 32); perplexity is 2 to that power."})
