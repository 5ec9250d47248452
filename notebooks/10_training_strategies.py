# %% [markdown]
# # 10 · Training strategies: one modality starves the other, and three ways to feed it
#
# Train a model on two modalities with one loss and you might expect each encoder to learn what it can. It does
# not. When one modality is **easier** — it lowers the loss faster — the model leans on it from the first steps,
# the loss falls, and the other modality's encoder stops receiving a useful gradient long before it has learned
# its share. The fused model looks perfect on the test set; its weaker encoder is barely trained, and the model
# has nothing to fall back on when the easy modality is noisy or missing. This chapter measures that *modality
# imbalance* with a linear probe on each encoder, fixes it three ways — gradient modulation (OGM-GE),
# alternating updates, gradual integration — and then looks at two data-side strategies of the study guide:
# balanced sampling and a curriculum.
#
# **You will be able to**
# - measure how much each encoder of a fused model has learned (a linear probe on its frozen features), and see
#   the easier modality win the race;
# - implement OGM-GE's gradient modulation and know when it works (SGD, a dominant modality that has not yet solved
#   the task) — and compare it with alternating updates and gradual integration;
# - draw balanced batches from a long-tailed data set with inverse-frequency weights (and spot a sampler that
#   silently does nothing), and pace a curriculum — then check whether it helps.
#
# **Time**: about 2 minutes on a 2-core laptop CPU (about a dozen small trainings), well under one on a GPU.
# **Prerequisites**: chapter 09 (fusion; the same world of sounding objects).

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
import random
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from mmcourse.data import CLASS_NAMES, balanced_batches, class_frequencies, pacing
from mmcourse.recipes import strategies_tiny as S
from mmcourse.results import record
from mmcourse.strategies import OGMGE
from mmcourse.utils import get_device, seed_everything
from mmcourse.viz import plot_spectrogram, show_images

seed_everything(0)
device = get_device()
print("device:", device, "(this chapter's models are small enough that it trains them on the CPU)")
lecture_start = time.perf_counter()

# %% [markdown]
# ## 1. An easy modality and a hard one
#
# Each example is one object: its image and its sound. Which of the 24 colour–shape classes is it? Both
# modalities hold the whole answer. The **sound** gives it away easily — colour sets the pitch, shape the
# timbre (chapter 00), here under white noise at 0 dB. The **image** is small (16 × 16) and noisy, and a CNN
# needs hundreds of steps to tell a small triangle from a small square.

# %%
train_set, test_set = S.task_data(S.N_TRAIN, seed=0), S.task_data(S.N_TEST, seed=1)
print(f"train {len(train_set)}, test {len(test_set)} examples; images {tuple(train_set.images.shape[1:])}, "
      f"log-mels {tuple(train_set.mels.shape[1:])}, sound at {S.SNR:g} dB SNR")
display(show_images(test_set.images[:8], [CLASS_NAMES[y] for y in test_set.labels[:8]]))
display(plot_spectrogram(test_set.mels[0], title=f"the sound of {CLASS_NAMES[test_set.labels[0]]} "
                                                 "(standardised log-mel, with noise)"))

# %% [markdown]
# The model, `TwoStreamClassifier`: a small CNN on the image and a 1-D convolution on the log-mel, each with its
# own linear head; the fused logits are the **sum** of the two heads' logits. That is exactly concatenation
# followed by one linear layer, written per stream so we can read each stream's share of the decision.
#
# **How much has an encoder learned?** Freeze it, train a linear classifier on its features (a *linear probe*),
# and test that classifier on new examples. The probe's accuracy is what the encoder's features make linearly
# readable — independent of the fused head.

# %%
model = S.build(train_set)
streams = model.stream_logits(train_set.images[:4], train_set.mels[:4])
print({k: tuple(v.shape) for k, v in streams.items()}, "-> fused logits", tuple(model(train_set.images[:4],
                                                                                     train_set.mels[:4]).shape))
print(f"parameters: image stream {sum(p.numel() for p in model.image.parameters()):,}, "
      f"sound stream {sum(p.numel() for p in model.sound.parameters()):,}")
print(f"probes of the untrained encoders: image {S.probe(model, 'image', train_set, test_set):.1%}, "
      f"sound {S.probe(model, 'sound', train_set, test_set):.1%}")

# %% [markdown]
# Even untrained, the sound encoder's random features are enough for a linear probe — that is how easy the sound
# is. The image encoder's random features give a fraction of that.
#
# ## 2. Imbalance, measured
#
# Two trainings of 400 steps (SGD with momentum, batches of 128), probes every 100 steps:
# - **image alone**: the image stream with its own loss — what this encoder can learn in the budget;
# - **joint**: both streams, one loss on the fused logits — the usual way to train a multimodal classifier.

# %%
runs = {}
for mode in ("image", "joint"):
    runs[mode] = S.train(mode, train_set, test_set, seed=0)


def show(name):
    e = runs[name][1].last
    print(f"{name:>26}: image probe {e['image probe']:.1%}, sound probe {e['sound probe']:.1%}, "
          f"fused accuracy {e['fused']:.1%}")


for name in runs:
    show(name)


def plot_probes(names, title):
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name in names:
        evals = runs[name][1].evals
        ax.plot([0] + [e["step"] for e in evals], [untrained] + [e["image probe"] for e in evals], "o-", label=name)
    ax.set(xlabel="training step", ylabel="image-encoder probe accuracy", ylim=(0, 1), title=title)
    ax.legend(loc="lower right")
    plt.close(fig)
    return fig


untrained = S.probe(S.build(train_set), "image", train_set, test_set)
display(plot_probes(["image", "joint"], "the image encoder trained alone vs inside the joint model"))

# %% [markdown]
# The joint model is near perfect on the test set — the sound does the work — and its image encoder is far behind
# the same encoder trained alone. Why? The loss of the fused logits falls as soon as *either* stream gets the
# answer right. The sound gets there first, the loss is almost zero within the first hundred steps, and from then
# on the image stream's gradient — which is proportional to what is left of the loss — is almost nothing:

# %%
loss = runs["joint"][1].loss
print("joint model's training loss at steps 0, 25, 50, 100, 200, 399:",
      ", ".join(f"{loss[s]:.3f}" for s in (0, 25, 50, 100, 200, 399)))
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.semilogy(runs["image"][1].loss, label="image alone", alpha=0.8)
ax.semilogy(loss, label="joint (fused logits)", alpha=0.8)
ax.set(xlabel="step", ylabel="training loss (log)", title="the fused loss is gone before the image has learned")
ax.legend()
plt.close(fig)
display(fig)

# %% [markdown]
# ## 3. Fix 1 — on-the-fly gradient modulation (OGM-GE)
#
# Peng et al. (CVPR 2022) slow the winner down. At every step, each stream's share of the fused logits scores
# the batch: $s_m = \sum_i \mathrm{softmax}(z^m_i)_{y_i}$. The stream ahead by $\rho = s_a / s_b > 1$ gets every
# gradient of its branch multiplied by
#
# $$k = 1 - \tanh\big(\alpha(\rho - 1)\big),$$
#
# the other keeps $k = 1$; optionally ("GE", generalisation enhancement) Gaussian noise of the gradient's own
# spread is added back. `mmcourse.strategies.OGMGE` does this between `backward()` and the optimiser step
# (`fit(..., before_step=ogm)`).

# %%
ogm = OGMGE(alpha=S.ALPHA, noise=False)
runs["OGM-GE (SGD)"] = S.train("ogm-ge", train_set, test_set, seed=0, ogm=ogm)
show("OGM-GE (SGD)")
k_sound = torch.tensor([k["sound"] for k in ogm.history])
k_image = torch.tensor([k["image"] for k in ogm.history])
print(f"alpha = {S.ALPHA:g}: the sound's gradient was scaled down on {(k_sound < 1).float().mean():.0%} of the "
      f"steps (mean k {k_sound.mean():.2f}), the image's on {(k_image < 1).float().mean():.0%}")
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.plot(k_sound, lw=0.8, label="k of the sound stream")
ax.plot(k_image, lw=0.8, label="k of the image stream")
ax.set(xlabel="step", ylabel="k", ylim=(-0.05, 1.05), title="OGM's coefficients: the sound is held back")
ax.legend(loc="center right")
plt.close(fig)
display(fig)

# %% [markdown]
# Two details decide whether this works.
#
# **The optimiser.** OGM multiplies gradients by $k$. SGD's step is proportional to the gradient, so the sound's
# steps shrink by $k$. Adam divides each gradient by a running average of its own size; a factor that persists
# is divided away as that average catches up (with $\beta_2 = 0.999$ it forgets over about a thousand steps, longer
# than this training), so with Adam the modulation should act less. The paper trains with SGD. The same modulation
# under AdamW, beside a joint AdamW run:

# %%
runs["OGM-GE (AdamW)"] = S.train("ogm-ge", train_set, test_set, seed=0, optimizer="adamw", lr=2e-3)
runs["joint (AdamW)"] = S.train("joint", train_set, test_set, seed=0, optimizer="adamw", lr=2e-3)
for name in ("OGM-GE (AdamW)", "joint (AdamW)"):
    show(name)

# %% [markdown]
# Under AdamW the modulation still helps here, by fewer points than under SGD. **The noise.** The "GE" part adds
# noise of the gradient's own spread to the modulated branch, meant to help generalisation in long trainings. In
# 400 steps:

# %%
runs["OGM-GE, with noise"] = S.train("ogm-ge", train_set, test_set, seed=0, ogm=OGMGE(alpha=S.ALPHA, noise=True))
show("OGM-GE, with noise")

# %% [markdown]
# ## 4. Fix 2 — alternating unimodal updates, and fix 3 — gradual integration
#
# Simpler ideas that need no coefficient:
# - **alternating**: even steps train the image stream on its own loss, odd steps the sound stream; no step lets
#   one modality answer for the other (the greedy/alternating schemes of the literature);
# - **gradual integration**: train the image stream alone (section 2's run), then the sound stream alone (100
#   steps), then fine-tune both on the fused loss at a fifth of the learning rate (100 steps). The study guide
#   "integrates" by zeroing the late modality's input; here each stream is trained before it meets the other.

# %%
runs["alternating"] = S.train("alternating", train_set, test_set, seed=0)
start = time.perf_counter()
runs["gradual integration"] = S.gradual(train_set, test_set, image_model=runs["image"][0], seed=0)
gradual_seconds = runs["image"][1].seconds + time.perf_counter() - start  # all three stages
for name in ("alternating", "gradual integration"):
    show(name)
display(plot_probes(["image", "joint", "OGM-GE (SGD)", "alternating"],
                    "image-encoder probe during training, by strategy"))

# %% [markdown]
# ## 5. The headline table
#
# Same data, same 400-step budget per stream, seed 0. *Image probe* is the weak modality's linear probe; *fused*
# is the model's own test accuracy.

# %%
rows = ["joint", "OGM-GE (SGD)", "OGM-GE, with noise", "alternating", "gradual integration", "joint (AdamW)",
        "OGM-GE (AdamW)", "image"]
plain = runs["joint"][1].last
print(f"{'strategy':>22} | {'image probe':>11} | {'gain':>6} | {'sound probe':>11} | {'fused':>6} | seconds")
for name in rows:
    e = runs[name][1].last
    seconds = gradual_seconds if name == "gradual integration" else runs[name][1].seconds
    label = "image alone (ceiling)" if name == "image" else name
    print(f"{label:>22} | {e['image probe']:>11.1%} | {e['image probe'] - plain['image probe']:>+6.1%} | "
          f"{e['sound probe']:>11.1%} | {e['fused']:>6.1%} | {seconds:>6.1f}")
ogm_last, gradual_last = runs["OGM-GE (SGD)"][1].last, runs["gradual integration"][1].last

# %%
display(record("10", "image-probe gain over the joint model, gradual integration", gradual_last["image probe"]
               - plain["image probe"], 0.15))
display(record("10", "image-probe gain over the joint model, OGM-GE (SGD, α = 3)", ogm_last["image probe"]
               - plain["image probe"], 0.10, seconds=runs["OGM-GE (SGD)"][1].seconds))
fixes = ("OGM-GE (SGD)", "alternating", "gradual integration")
drop = plain["fused"] - min(runs[name][1].last["fused"] for name in fixes)
display(record("10", "largest fused-accuracy drop of a fix (OGM-GE, alternating, gradual) below the joint model",
               drop, 0.01, higher_is_better=False))

# %% [markdown]
# Each fix keeps the fused accuracy within a point of the joint model and gives the image encoder back much of
# what it lost. Gradual integration does best here because the image stream trains with the whole loss to
# itself for 400 steps; OGM-GE can only slow the sound down, and once the sound has solved a batch there is little
# loss left for the image to learn from. `benchmarks/bench_seeds_strategies.py` repeats this table for five seeds.
#
# Why bother, if the fused accuracy was already near perfect? Because a fused model is only as good as what it
# learned to use. Take the sound away (zeros, as in chapter 09) and compare:

# %%
silent = torch.zeros_like(test_set.mels)
for name in ("joint", "OGM-GE (SGD)", "gradual integration"):
    m = runs[name][0].eval()
    with torch.no_grad():
        acc = (m(test_set.images, silent).argmax(1) == test_set.labels).float().mean()
    print(f"{name:>20}: accuracy with the sound missing {acc:.1%}")

# %% [markdown]
# Only the gradually integrated model answers without the sound: its image stream was trained to decide on its own.
# OGM-GE's image *encoder* learned more than the joint model's (the probe says so), but its head was only ever
# trained to add to a confident sound, and alone it is no better than the joint model. A probe measures what an
# encoder knows, not what the fused model does without its partner — check both.
#
# ## 6. Balanced sampling on a long-tailed data set
#
# Real data sets are long-tailed: a few classes are everywhere, most are rare. Keep class $c$'s examples with
# probability $50^{-c/23}$ and the rarest class has 50 times fewer examples than the most common. Sampling uniformly
# over examples reproduces the tail in every batch. Sampling example $i$ with weight $1 / n_{y_i}$ (the count of
# its class) makes every class equally likely — `torch.utils.data.WeightedRandomSampler` draws with replacement
# by those weights; `balanced_batches` wraps it.
#
# The study guide's `ModalityBalancedSampler` computes weights total/count — numbers far above 1 — and then keeps
# each example *if `random.random() < weight`*: with every weight above 1, every example is kept, and the "balanced"
# sampler returns the data set as it is.

# %%
tail = S.long_tailed(train_set.labels, imbalance=50)
labels = train_set.labels[tail]
counts = labels.bincount(minlength=24)
print(f"long-tailed subset: {len(tail)} examples, most common class {counts.max()}, rarest {counts.min()}")


def study_guide_sampler(labels, seed=0):
    """The study guide's sampler, condensed: accept each example with probability = its weight (total / count)."""
    rng = random.Random(seed)
    weight = {c: len(labels) / n for c, n in enumerate(labels.bincount().tolist()) if n}
    return torch.tensor([i for i, y in enumerate(labels.tolist()) if rng.random() < weight[y]])


draws = {"uniform over examples": torch.randint(len(labels), (512_000,), generator=torch.Generator().manual_seed(0)),
         "study guide's sampler": torch.cat([study_guide_sampler(labels, s) for s in range(100)]),
         "inverse-frequency weights": torch.cat([balanced_batches(labels, 128, seed=0)(s) for s in range(4000)])}
freqs = {name: class_frequencies(d, labels, 24) for name, d in draws.items()}
for name, f in freqs.items():
    print(f"{name:>26}: {len(draws[name]):>7} draws, class shares {f.min():.2%} to {f.max():.2%} "
          f"(uniform {1 / 24:.2%}), largest relative deviation {(f * 24 - 1).abs().max():.1%}")
fig, ax = plt.subplots(figsize=(9, 3.8))
width = 0.28
for j, (name, f) in enumerate(freqs.items()):
    ax.bar(torch.arange(24) + (j - 1) * width, f, width, label=name)
ax.axhline(1 / 24, color="k", lw=0.8, ls="--", label="uniform")
ax.set(xticks=range(24), xlabel="class (most common to rarest)", ylabel="share of draws",
       title="sampled class frequencies on the long-tailed subset")
ax.set_xticklabels(CLASS_NAMES, rotation=90, fontsize=7)
ax.legend(fontsize=8)
plt.close(fig)
display(fig)
deviation = (freqs["inverse-frequency weights"] * 24 - 1).abs().max().item()

# %%
display(record("10", "balanced sampling: largest relative deviation of a class's share from uniform", deviation,
               0.03, higher_is_better=False))

# %% [markdown]
# Balanced sampling repeats the rare classes' few examples many times; with 4 examples of the rarest class, a
# model sees the same 4 images again and again. It is a trade between ignoring the tail and overfitting to it —
# the reason re-weighting is often combined with augmentation or applied only in a final phase.
#
# ## 7. A curriculum: easy scenes first
#
# Curriculum learning orders the data from easy to hard. Task: **count** the objects (1–4 small shapes, 16 × 16
# images); more objects are harder. A *pacing function* says what share of the data, easiest first, may be drawn
# at each step: here it starts at 20 % and doubles every quarter of the training, so one-object scenes come first
# and every scene is in the pool from the middle on.

# %%
count_images, count_labels = S.counting_data(6000, seed=0)
count_test = S.counting_data(2000, seed=1)
print("pool share at steps 0, 100, 200, 300:", [round(pacing(s, S.COUNT_STEPS), 2) for s in (0, 100, 200, 300)])
display(show_images(count_test[0][:8], [f"{c + 1} objects" for c in count_test[1][:8].tolist()]))
curves = {}
for curriculum in (False, True):
    _, history = S.train_counter(count_images, count_labels, count_test, curriculum, seed=0)
    curves["curriculum" if curriculum else "random order"] = history
fig, ax = plt.subplots(figsize=(7, 3.2))
for name, history in curves.items():
    ax.plot([e["step"] for e in history.evals], [e["accuracy"] for e in history.evals], "o-", ms=3, label=name)
ax.set(xlabel="training step", ylabel="test accuracy (1-4 objects)", ylim=(0, 1),
       title="counting: curriculum vs random order")
ax.legend(loc="lower right")
plt.close(fig)
display(fig)
for name, history in curves.items():
    print(f"{name:>13}: test accuracy at step 100 {history.evals[3]['accuracy']:.1%}, at the end "
          f"{history.last['accuracy']:.1%}")

# %% [markdown]
# Here the curriculum does not help: the hard scenes were learnable from the start, and holding them back only
# delays learning them (the accuracy dips as each new difficulty enters the pool). A curriculum pays when the hard
# examples are too hard or too noisy to learn from at first — long sequences, noisy labels, a generator
# that must learn coarse structure before detail — and it is cheap to check, as here, against random order.
#
# ## Summary
#
# - **Modality imbalance** is measurable: a linear probe on each encoder. Trained jointly, the easier modality
#   drives the loss to zero before the harder one has learned; its encoder stays far below what it learns alone.
# - **Fixes**: slow the winner (OGM-GE — with SGD, not Adam, and before the winner has solved the data), give each
#   stream its own steps (alternating), or train each stream before fusing (gradual integration, the strongest
#   here). Each kept the fused accuracy; only the gradually integrated model also answers without its easy
#   modality.
# - **Balanced sampling** with inverse-frequency weights and `WeightedRandomSampler` makes classes uniform within
#   a percent; an accept-with-probability-weight sampler with weights above 1 does nothing at all.
# - **Curriculum** is a hypothesis to test, not a default: on counting it slowed learning down.
#
# **Interview questions, answered from this notebook**
# - *What are the challenges in multimodal fusion?* — Modality imbalance (section 2): the fused accuracy hides an
#   encoder that barely learned; the probe shows it.
# - *How do you train when one modality dominates?* — Modulate its gradient (OGM-GE, section 3), alternate
#   unimodal updates, or pre-train each stream and fuse gradually (section 4); measure with probes (section 5).
# - *Curriculum learning for multimodal models?* — Order by difficulty with a pacing function, and compare with
#   random order on the same budget (section 7).
#
# The exercises build inverse-frequency weights and a pacing function, fix the study guide's sampler, tune OGM's
# strength, and ask why the easier modality wins.

# %%
lecture_seconds = time.perf_counter() - lecture_start
print(f"lecture ran in {lecture_seconds:.0f} s on {device}")
