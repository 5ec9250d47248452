"""Chapter 06 exercises: the forward process q(x_t | x_0) and DDIM's reverse step (build); a DDPM sampler that adds
noise at its last step (fix); a guidance weight and a step count for a fast sampler (experiment); three questions
(quiz)."""

from __future__ import annotations

import functools

import torch

from mmcourse import zoo
from mmcourse.grading.core import devices, expect_close, fail, register, register_quiz
from mmcourse.losses.diffusion import NoiseSchedule
from mmcourse.recipes import unclip_tiny

T = 50


def _alpha_bar(device):
    return NoiseSchedule.cosine(T).alpha_bar.to(device)


# ---------------------------------------------------------------- 06.q_sample
def q_sample(x0, t, noise, alpha_bar):
    """Reference: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one t per image."""
    a = alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_no_sqrt(x0, t, noise, alpha_bar):
    """uses ᾱ_t and 1 − ᾱ_t themselves as the weights"""
    a = alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return a * x0 + (1 - a) * noise


def _q_swapped(x0, t, noise, alpha_bar):
    """puts √ᾱ_t on the noise and √(1 − ᾱ_t) on the image"""
    a = alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return (1 - a).sqrt() * x0 + a.sqrt() * noise


def _q_off_by_one(x0, t, noise, alpha_bar):
    """reads ᾱ one step too early (ᾱ_{t−1}, and 1 at t = 0)"""
    a = torch.cat([alpha_bar.new_ones(1), alpha_bar])[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _q_first_t_only(x0, t, noise, alpha_bar):
    """uses the first image's t for the whole batch"""
    a = alpha_bar[t[0]]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@register("06.q_sample", q_sample, [_q_no_sqrt, _q_swapped, _q_off_by_one, _q_first_t_only])
def _test_q_sample(fn):
    g = torch.Generator().manual_seed(60)
    n = 0
    for device in devices():
        alpha_bar = _alpha_bar(device)
        for shape, ts, case in (((4, 3, 5, 5), [0, 7, 25, T - 1], "4 images (3, 5, 5), t = 0, 7, 25, 49"),
                                ((3, 6), [10, 10, 3], "3 vectors of 6 (the prior's embeddings), t = 10, 10, 3")):
            x0, noise = torch.randn(shape, generator=g).to(device), torch.randn(shape, generator=g).to(device)
            t = torch.tensor(ts, device=device)
            expect_close(fn(x0, t, noise, alpha_bar), q_sample(x0, t, noise, alpha_bar), f"{case}: x_t",
                         "x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε with ᾱ_t = alpha_bar[t] of each image, reshaped to "
                         "broadcast over the image's other dimensions")
            n += 1
    return n


# ---------------------------------------------------------------- 06.ddim_step
def ddim_step(x_t, t, t_prev, eps, alpha_bar):
    """Reference: x̂_0 from ε, then x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev) ε, with ᾱ_prev = 1 when t_prev = −1."""
    return _ddim(x_t, t, t_prev, eps, alpha_bar)


def _ddim(x_t, t, t_prev, eps, alpha_bar, *, negative_index=False, fresh_noise=False, no_sqrt=False):
    """The DDIM step, with one of the mistakes below switched on."""
    a = alpha_bar[t]
    a_prev = alpha_bar[t_prev] if t_prev >= 0 or negative_index else torch.ones((), device=x_t.device)
    x0 = (x_t - (1 - a).sqrt() * eps) / (a if no_sqrt else a.sqrt())
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * (torch.randn_like(eps) if fresh_noise else eps)


def _ddim_negative_index(x_t, t, t_prev, eps, alpha_bar):
    """indexes alpha_bar[t_prev] also for t_prev = −1, which Python reads as the LAST ᾱ"""
    return _ddim(x_t, t, t_prev, eps, alpha_bar, negative_index=True)


def _ddim_returns_x0(x_t, t, t_prev, eps, alpha_bar):
    """returns the predicted x̂_0 at every step"""
    return _ddim(x_t, t, -1, eps, alpha_bar)


def _ddim_fresh_noise(x_t, t, t_prev, eps, alpha_bar):
    """re-noises x̂_0 with new random noise instead of the predicted ε"""
    return _ddim(x_t, t, t_prev, eps, alpha_bar, fresh_noise=True)


def _ddim_no_sqrt_x0(x_t, t, t_prev, eps, alpha_bar):
    """divides by ᾱ_t instead of √ᾱ_t when forming x̂_0"""
    return _ddim(x_t, t, t_prev, eps, alpha_bar, no_sqrt=True)


@register("06.ddim_step", ddim_step, [_ddim_negative_index, _ddim_returns_x0, _ddim_fresh_noise, _ddim_no_sqrt_x0])
def _test_ddim_step(fn):
    g = torch.Generator().manual_seed(61)
    n = 0
    for device in devices():
        alpha_bar = _alpha_bar(device)
        for t, t_prev in ((40, 30), (12, 0), (9, -1)):
            x_t, eps = torch.randn(2, 3, 4, 4, generator=g).to(device), torch.randn(2, 3, 4, 4, generator=g).to(device)
            hint = ("x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, then √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev) · ε with the same ε")
            if t_prev == -1:
                hint = ("at t_prev = −1 there is no ᾱ to read: ᾱ_prev = 1, so the step returns x̂_0. Careful: "
                        "alpha_bar[-1] in Python is the last ᾱ of the chain, the noisiest one")
            expect_close(fn(x_t, t, t_prev, eps, alpha_bar), ddim_step(x_t, t, t_prev, eps, alpha_bar),
                         f"t = {t} → t_prev = {t_prev}: x_prev", hint, atol=1e-4)
            n += 1
    return n


# ---------------------------------------------------------------- 06.fix_sampler
def fixed_ddpm_sample(eps_fn, betas, shape, generator):
    """Reference: Ho et al.'s Algorithm 2 (σ_t = √β_t), no noise at the last step (t = 0)."""
    return _ddpm(eps_fn, betas, shape, generator)


def _ddpm(eps_fn, betas, shape, generator, *, noise_at_end=False, last_t=0, alpha_bar_in_mean=False):
    """DDPM sampling from t = T − 1 down to `last_t`, with one of the mistakes below switched on."""
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    x = torch.randn(shape, generator=generator).to(betas.device)
    for t in range(len(betas) - 1, last_t - 1, -1):
        eps = eps_fn(x, t)
        x = (x - betas[t] / (1 - alpha_bar[t]).sqrt() * eps) / (alpha_bar if alpha_bar_in_mean else alphas)[t].sqrt()
        if t > last_t or noise_at_end:
            x = x + betas[t].sqrt() * torch.randn(shape, generator=generator).to(betas.device)
    return x


def _sampler_noise_at_the_end(eps_fn, betas, shape, generator):
    """adds σ_t z at every step, the last too"""
    return _ddpm(eps_fn, betas, shape, generator, noise_at_end=True)


def _sampler_skips_t0(eps_fn, betas, shape, generator):
    """stops at t = 1: the last denoising step is never taken"""
    return _ddpm(eps_fn, betas, shape, generator, last_t=1)


def _sampler_alpha_bar_in_mean(eps_fn, betas, shape, generator):
    """divides the mean by √ᾱ_t instead of √α_t"""
    return _ddpm(eps_fn, betas, shape, generator, alpha_bar_in_mean=True)


def _eps_fn(x, t):
    """A stand-in noise predictor: deterministic, different at every t."""
    return 0.5 * x + 0.01 * t


@register("06.fix_sampler", fixed_ddpm_sample, [_sampler_noise_at_the_end, _sampler_skips_t0,
                                                _sampler_alpha_bar_in_mean])
def _test_fix_sampler(fn):
    betas = NoiseSchedule.linear(20).betas
    shape = (3, 2, 4, 4)
    calls = []

    def eps_fn(x, t):
        calls.append(int(t))
        return _eps_fn(x, t)

    got = fn(eps_fn, betas, shape, torch.Generator().manual_seed(62))
    want = fixed_ddpm_sample(_eps_fn, betas, shape, torch.Generator().manual_seed(62))
    if calls != list(range(19, -1, -1)):
        fail("the timesteps at which the sampler asks for ε (20-step schedule)", "19, 18, …, 1, 0",
             ", ".join(map(str, calls)) or "none", "the chain has T steps, t = T − 1 down to 0: the last "
             "prediction, at t = 0, is the one that removes the last of the noise")
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-5):
        left = (got - want).std().item()
        if abs(left - betas[0].sqrt().item()) < 0.5 * betas[0].sqrt().item():
            fail(f"noise is left in the final sample: its difference from the right one has std {left:.4f}, "
                 f"which is σ_0 = √β_0 = {betas[0].sqrt().item():.4f}", "no noise after the step at t = 0",
                 "σ_0 z added at t = 0", "nothing after the last step could remove that noise: add σ_t z only "
                 "while t > 0")
    expect_close(got, want, "the sample (20 steps, a stand-in ε predictor, the generator seeded)",
                 "each step: x ← (x − β_t / √(1 − ᾱ_t) · ε) / √α_t, then + √β_t · z with z drawn from the "
                 "generator, only while t > 0")
    return 1


# ---------------------------------------------------------------- 06.fast_sampler (experiment)
MAX_STEPS, MIN_BOTH = 10, 0.95


@functools.cache
def _models():
    return (zoo.load("unclip-tiny", verbose=False), zoo.load("clip-tiny", verbose=False),
            zoo.load("judge-tiny", verbose=False))


def _fast_reference():
    return {"guidance": 3.0, "steps": 10}


def _fast_unguided():
    """no guidance, 10 steps"""
    return {"guidance": 0.0, "steps": 10}


def _fast_over_budget():
    """50 steps, over the budget"""
    return {"guidance": 3.0, "steps": 50}


def _fast_negative():
    """a negative guidance weight"""
    return {"guidance": -1.0, "steps": 10}


@register("06.fast_sampler", _fast_reference, [_fast_unguided, _fast_over_budget, _fast_negative])
def _test_fast_sampler(fn):
    choice = fn()
    if not isinstance(choice, dict) or set(choice) != {"guidance", "steps"}:
        fail("my_sampler() must return a dict with the keys guidance and steps", "e.g. {'guidance': 1.0, "
             "'steps': 5}", choice)
    w, steps = choice["guidance"], choice["steps"]
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 20:
        fail("guidance: a weight w ≥ 0 (w = 0 is the model as trained)", "a number in [0, 20]", w)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        fail(f"steps: the fast sampler may call the network at most {MAX_STEPS} times per guidance branch",
             f"an int in [1, {MAX_STEPS}]", steps)
    model, clip, judge = _models()
    got = unclip_tiny.text_to_image(model, clip, judge, per_pair=4, guidance=float(w), steps=steps, seed=0)["both"]
    if got < MIN_BOTH:
        fail(f"{choice}: {got:.3f} of 80 samples (4 per seen pair) have the asked colour and shape",
             f"≥ {MIN_BOTH}", f"{got:.3f}", "the lecture's sections 9 and 10 measured each knob alone: what does "
             "guidance buy, and how few DDIM steps still draw the right object?")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("06.quiz_eps", "The decoder is trained to predict the noise ε that was added, not the clean image x_0. "
              "What does that buy?", "c",
              "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: at every t the target ε is standard normal, so one network and one "
              "unweighted loss serve the whole chain; Ho et al. showed the simple ε-loss is a reweighted variational "
              "bound, and the sampler's mean follows from ε̂ in closed form. (Predicting x_0 is possible — unCLIP's "
              "prior does it — but the target's difficulty then changes wildly with t.)",
              choices={"a": "the network never has to look at x_t",
                       "b": "sampling needs only one network call",
                       "c": "a target of the same scale at every t, so one network and one loss weight serve the "
                            "whole chain, and the reverse step's mean follows from it",
                       "d": "ε-prediction needs no noise schedule"},
              wrong={"a": "ε̂ is computed from x_t and t: the noise in x_t is what it must find.",
                     "b": "sampling still walks the chain, one call per step (DDIM skips steps, whatever the "
                          "parameterisation).",
                     "d": "the schedule defines x_t and the step that uses ε̂; it is needed either way."})
register_quiz("06.quiz_guidance", "Classifier-free guidance samples with ε̃ = ε(z) + w · (ε(z) − ε(∅)). Raising w "
              "from 0 to 3 …", "b",
              "guidance extrapolates away from the unconditional prediction, towards what is most typical of the "
              "condition: samples match their prompt more often, and resemble each other more. Section 9 measured "
              "both along w.",
              choices={"a": "makes sampling cheaper",
                       "b": "raises how often samples show what was asked, at a cost in diversity",
                       "c": "needs a separately trained classifier",
                       "d": "changes the network's weights"},
              wrong={"a": "it costs a second network call per step (the unconditional branch).",
                     "c": "that is classifier guidance; classifier-free guidance uses the same network with the "
                          "conditioning dropped, learned by dropping it 10 % of the time in training.",
                     "d": "guidance happens at sampling time; the weights stay as trained."})
register_quiz("06.quiz_signal", "At some t, √ᾱ_t = 0.6. By what factor is ε scaled in x_t = √ᾱ_t x_0 + "
              "√(1 − ᾱ_t) ε?", 0.8,
              "ᾱ_t = 0.36, so √(1 − ᾱ_t) = √0.64 = 0.8: the squares of the two weights sum to 1, which keeps x_t at "
              "unit variance when x_0 has it.",
              wrong={0.4: "that is 1 − 0.6: the weights' squares sum to 1, not the weights.",
                     0.64: "that is 1 − ᾱ_t itself; ε is scaled by its square root."},
              tolerance=1e-3)
