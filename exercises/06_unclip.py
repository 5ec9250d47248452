# %% [markdown]
# # 06 · Exercises: diffusion, step by step
#
# The pieces of a diffusion model that fit in a few lines: the forward process, one reverse step, a sampling loop,
# and the two knobs of sampling — guidance and the number of steps. Two functions to build, a sampler to fix, a
# sampler to tune, and questions on the chapter — each checked against the course's reference. Write the body of
# each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your answer is
# right, or what was expected, what came out and a hint.
#
# (`solutions/` holds the worked answers; `exercises/` is generated from it with the answers removed.)

# %%
# Setup: on Colab, install the course's helper package only (Colab's torch, numpy, ipywidgets stay).
import sys

if "google.colab" in sys.modules:
    import subprocess

    url = "git+https://github.com/mmcourse/mmcourse@v0.1.0"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mmcourse @ {url}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"Could not install the course package from {url}:\n{pip.stderr[-1500:]}\n"
                         "Check that the runtime is connected to the internet, then run this cell again.")

# %%
import torch

from mmcourse.grading import check
from mmcourse.losses.diffusion import NoiseSchedule

# %% [markdown]
# ## 1. The forward process
#
# `alpha_bar` (T,) holds ᾱ_0 … ᾱ_{T−1}, the share of the signal left after each step. Given clean data x0 (B, ...)
# — images (B, 3, H, W) or vectors (B, D) —, one timestep per item t (B,) (integers in [0, T)) and noise of x0's
# shape, return x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε, each item with its own ᾱ_t. Write it for any number of
# dimensions and any device.


# %%
def q_sample(x0, t, noise, alpha_bar):
    """x0, noise (B, ...); t (B,) long; alpha_bar (T,) -> x_t (B, ...)."""
    raise NotImplementedError("exercise: write the body of `q_sample`")


# %%
check("06.q_sample", q_sample)

# %% [markdown]
# ## 2. One reverse step: DDIM
#
# DDIM walks the chain back with the network's noise prediction ε̂ and can skip steps. From x_t at step t to an
# earlier step t_prev:
#
# 1. the clean image the prediction implies: x̂_0 = (x_t − √(1 − ᾱ_t) · ε̂) / √ᾱ_t;
# 2. x_prev = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev) · ε̂, with ᾱ_prev = alpha_bar[t_prev].
#
# The last step goes to t_prev = −1, "before the chain": there ᾱ_prev = 1 and the step returns x̂_0.
# (t and t_prev are Python ints; no clipping of x̂_0.)


# %%
def ddim_step(x_t, t, t_prev, eps, alpha_bar):
    """x_t, eps (B, ...); ints t > t_prev ≥ −1; alpha_bar (T,) -> x_prev (B, ...)."""
    raise NotImplementedError("exercise: write the body of `ddim_step`")


# %%
check("06.ddim_step", ddim_step)

# %% [markdown]
# Your two functions together: noise an image to t = 40 with q_sample, then one DDIM step straight to t_prev = −1
# with the *true* noise as the prediction — a perfect denoiser gets x_0 back exactly.

# %%
alpha_bar = NoiseSchedule.cosine(50).alpha_bar
x0, noise = torch.rand(1, 3, 4, 4) * 2 - 1, torch.randn(1, 3, 4, 4)
try:
    x40 = q_sample(x0, torch.tensor([40]), noise, alpha_bar)
    back = ddim_step(x40, 40, -1, noise, alpha_bar)
    print(f"ᾱ_40 = {alpha_bar[40]:.3f}; largest error after one step back: {(back - x0).abs().max():.2e}")
except NotImplementedError:
    print("write q_sample and ddim_step above first")

# %% [markdown]
# ## 3. Fix a sampler
#
# Below is DDPM's ancestral sampler as Ho et al. state it (Algorithm 2, with σ_t = √β_t): start from pure noise,
# and at each t from T − 1 down to 0 remove the predicted noise and, except at the very end, add fresh noise σ_t z.
# `eps_fn(x, t)` is the trained network. Every random draw comes from `generator` (on the CPU) and moves to the
# schedule's device: `torch.randn(shape, generator=generator).to(betas.device)`. The loop runs and its samples look
# almost right — but one rule is broken. Find it and fix it. (The check runs your sampler with a stand-in network and
# the same generator as the reference.)


# %%
def ddpm_sample(eps_fn, betas, shape, generator):
    """eps_fn(x, t) -> ε̂; betas (T,); shape of the sample -> x_0."""
    # this code has a bug: find it and fix it
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    x = torch.randn(shape, generator=generator).to(betas.device)
    for t in range(len(betas) - 1, -1, -1):
        eps = eps_fn(x, t)
        x = (x - betas[t] / (1 - alpha_bar[t]).sqrt() * eps) / alphas[t].sqrt()
        x = x + betas[t].sqrt() * torch.randn(shape, generator=generator).to(betas.device)
    return x


# %%
check("06.fix_sampler", ddpm_sample)

# %% [markdown]
# ## 4. Experiment: a fast sampler
#
# The lecture sampled with guidance weight 3 and 25 DDIM steps. Here the sampler may call the network at most
# **10 times** (per guidance branch). Choose the guidance weight w (≥ 0; 0 is the model as trained) and the number
# of DDIM steps so that at least 95 % of 80 samples — 4 for each of the 20 seen colour-shape pairs, drawn from the
# prompt "a {colour} {shape}" through the prior — show the asked colour and shape, as the judge reads them. The
# check draws and judges your choice with the chapter's trained models (a few seconds; the first time it may train
# them). Sections 9 and 10 of the lecture measured each knob alone.


# %%
def my_sampler():
    """-> {"guidance": float, "steps": int}"""
    raise NotImplementedError("exercise: write the body of `my_sampler`")


# %%
check("06.fast_sampler", my_sampler)

# %% [markdown]
# ## 5. Check yourself
#
# **Q1.** The decoder is trained to predict the noise ε that was added, not the clean image x_0. What does that buy?
# (a) the network never has to look at x_t · (b) sampling needs only one network call · (c) a target of the same
# scale at every t, so one network and one loss weight serve the whole chain, and the reverse step's mean follows
# from it · (d) ε-prediction needs no noise schedule

# %%
answer_eps = ...  # your answer

# %%
check("06.quiz_eps", answer_eps)

# %% [markdown]
# **Q2.** Classifier-free guidance samples with ε̃ = ε(z) + w · (ε(z) − ε(∅)). Raising w from 0 to 3 …
# (a) makes sampling cheaper · (b) raises how often samples show what was asked, at a cost in diversity ·
# (c) needs a separately trained classifier · (d) changes the network's weights

# %%
answer_guidance = ...  # your answer

# %%
check("06.quiz_guidance", answer_guidance)

# %% [markdown]
# **Q3.** At some t, √ᾱ_t = 0.6. By what factor is ε scaled in x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε?

# %%
answer_signal = ...  # your answer

# %%
check("06.quiz_signal", answer_signal)
