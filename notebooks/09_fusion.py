# %% [markdown]
# # 09 · Fusion and missing modalities: when late fusion cannot work, and how a model survives a lost stream
#
# Every multimodal model has to decide *where* its modalities meet. Meet at the raw input (early fusion) and one
# network must learn everything at once; meet only at the very end (late fusion) and each modality is judged on
# its own, the two verdicts averaged; meet in between — by concatenating features, multiplying them (tensor
# fusion), or letting one modality's tokens attend to the other's — and the model can relate the two. This chapter
# measures the difference on a question that **needs both modalities at the same time**, and on a control question
# that either modality answers alone. Then it takes a modality away at test time, as a broken microphone or a
# covered camera would.
#
# **You will be able to**
# - build early, late, intermediate (concatenation), tensor (TFN), cross-attention and multimodal-transformer
#   fusion over the same frozen encoders, and read each one's shapes;
# - show why late fusion is stuck at chance on an interaction task — the decision rule it cannot express — while
#   attention fusion is near perfect, and see *where* the attention looks;
# - measure what a missing modality does to a fused model, and fix it with modality dropout.
#
# **Time**: about 3 minutes on a 2-core laptop CPU (fourteen small trainings on frozen features), under one on a
# GPU. **Prerequisites**: chapter 01 (attention), chapter 02 (CLIP, whose image tower this chapter reuses).

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
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from mmcourse import zoo
from mmcourse.data import CLASS_NAMES, SIZES, Scenes, object_sounds
from mmcourse.models.fusion import METHODS
from mmcourse.recipes import fusion_tiny as R
from mmcourse.results import record
from mmcourse.utils import get_device, seed_everything
from mmcourse.viz import play_audio, plot_attention_beside, plot_spectrogram, show_images

seed_everything(0)
device = get_device()
print("device:", device)
lecture_start = time.perf_counter()

# %% [markdown]
# ## 1. Two questions about an image and a sound
#
# Each example is an image of the world and the sound of **one object in it** (colour sets the pitch, shape the
# timbre, as in chapter 00). Two tasks:
#
# - **interaction** — the image has two objects of different sizes; *is the object you hear small or large?* The
#   image alone cannot tell which object sounds; the sound says nothing about size. Only the pair answers it.
# - **control** — the image has one object; *which of the 24 colour–shape classes is it?* Either modality alone is
#   enough.

# %%
data = {task: {"train": R.task_data(task, R.N_TRAIN, seed=0), "test": R.task_data(task, R.N_TEST, seed=100)}
        for task in R.TASKS}
examples = data["interaction"]["test"]
heard = [CLASS_NAMES[3 * int(examples.scenes.colour[i, k]) + int(examples.scenes.shape[i, k])]
         for i, k in enumerate(examples.sounding[:8].tolist())]
display(show_images(examples.images[:8], [f"hear: {h}\n→ {SIZES[y]}" for h, y in zip(heard, examples.labels)]))
for task, split in data.items():
    print(f"{task:>11}: {R.TASKS[task]!r}  train {len(split['train'])}, test {len(split['test'])}, "
          f"{len(split['train'].class_names)} answers, most common answer in test "
          f"{split['test'].labels.bincount().max().item() / len(split['test']):.1%}")

# %% [markdown]
# The sound of the first example (its spectrogram is what the sound encoder reads):

# %%
first = examples.scenes[0]
k = int(examples.sounding[0])
wave = object_sounds(first.colour[:, k], first.shape[:, k])
display(plot_spectrogram(examples.mels[0], title=f"the sound of example 0: {heard[0]} (standardised log-mel)"))
play_audio(wave[0])

# %% [markdown]
# ## 2. Frozen encoders: CLIP's image tower and a sound encoder
#
# Fusion is about what happens *after* each modality is encoded, so every method below gets the same frozen
# encoders and trains only its fusion and head:
# - **image**: chapter 02's CLIP tower (from the model zoo), its penultimate block's 64 patch tokens (8 × 8 grid),
#   without CLS — where each object is, and what it is;
# - **sound**: a small 1-D convolution over the log-mel spectrogram (11 tokens over time), trained here to name the
#   object it hears (24 classes) on other sounds, then frozen.

# %%
visual = zoo.load("clip-tiny").visual.to(device)
sound_encoder, sound_history = R.train_sound_encoder(seed=0)
start = time.perf_counter()
features = {task: {split: R.features(d, visual, sound_encoder.to(device)) for split, d in splits.items()}
            for task, splits in data.items()}
feature_seconds = time.perf_counter() - start
f = features["interaction"]["train"]
print(f"sound encoder names held-out sounds: {sound_history.last['accuracy']:.1%}")
print(f"features of {sum(len(x) for s in features.values() for x in s.values())} examples in "
      f"{feature_seconds:.0f} s: image tokens {tuple(f.image.shape)}, sound tokens {tuple(f.sound.shape)}")

# %% [markdown]
# ## 3. Six ways to fuse, with their shapes
#
# | method | where the modalities meet | the fused representation |
# |---|---|---|
# | early | raw pixels and log-mel, flattened and concatenated | an MLP over everything |
# | late | nowhere: each modality has its own classifier | weighted sum of the two logit vectors |
# | concat (intermediate) | mean-pooled token features, concatenated | an MLP |
# | tensor (TFN) | pooled features projected to 16, a 1 appended, outer product | all 17 × 17 products → MLP |
# | cross-attention | every sound token attends to the 64 image tokens | the attended sound tokens, pooled |
# | multimodal transformer | one sequence [CLS; image + e_image; sound + e_sound] | the CLS output |
#
# `FusionClassifier` wraps each; the fusion blocks live in `mmcourse.nn.fusion`. Running one batch through each
# shows the shapes it reads and the parameters it trains:

# %%
batch = 4
for method in METHODS:
    image, sound = (t[:batch] for t in f.inputs(method))
    model = R.FusionClassifier(method, image.shape[1:], sound.shape[1:], num_classes=2)
    print(f"{method:>11}: image {str(tuple(image.shape)):>16} + sound {str(tuple(sound.shape)):>13} -> logits "
          f"{tuple(model(image, sound).shape)}   {sum(p.numel() for p in model.parameters()):>9,} parameters")
rank = R.FusionClassifier("tensor", f.image.shape[1:], f.sound.shape[1:], 2).fusion.proj_a.out_features
print(f"tensor fusion: rank {rank}, [z; 1] has {rank + 1} entries per modality, {(rank + 1) ** 2} products")

# %% [markdown]
# ## 4. The headline: every fusion on both tasks
#
# Each method trains for the same 400 steps of 128 examples (AdamW, warm-up and cosine decay), from the same seed,
# on the same frozen features, and is scored on 2 000 test examples it never saw.

# %%
print(f"each training: {R.STEPS} steps of {R.BATCH_SIZE} examples; test sets of {R.N_TEST} examples")
table, models, seconds = {}, {}, {}
for task in R.TASKS:
    for method in METHODS:
        models[task, method], history = R.train(method, features[task]["train"], seed=0, progress=False)
        table[task, method] = R.accuracy(models[task, method], features[task]["test"])
        seconds[task, method] = history.seconds
print(f"{'method':>11} | {'interaction':>11} | {'control':>8} | {'seconds':>7}")
for method in METHODS:
    print(f"{method:>11} | {table['interaction', method]:>11.1%} | {table['control', method]:>8.1%} | "
          f"{seconds['interaction', method] + seconds['control', method]:>7.1f}")

# %%
display(record("09", "late fusion accuracy on the interaction task (lower is the point)",
               table["interaction", "late"], 0.65, higher_is_better=False))
display(record("09", "cross-attention fusion accuracy on the interaction task", table["interaction", "cross"], 0.95,
               seconds=seconds["interaction", "cross"]))

# %% [markdown]
# **What to notice.** On the control task every method is at or near 100 %: when each modality answers alone, how
# you fuse hardly matters. On the interaction task the methods split. Late fusion sits at chance; concatenation
# and early fusion get part of the way; the methods that let a feature of one modality *multiply* or *select* a
# feature of the other come closest — tensor fusion and the multimodal transformer close behind cross-attention,
# the best. Early fusion, reading raw pixels and spectrograms, must learn perception and interaction at once from
# a few thousand examples, with more than a hundred times the parameters of late fusion.

# %% [markdown]
# ## 5. Why late fusion cannot answer: the decision rule it cannot express
#
# Late fusion decides from a sum: score(image, sound) = f(image) + g(sound). Take two images with the same two
# objects, a red circle and a blue square, whose sizes are swapped, and play each object's sound:
#
# | | hear the red circle | hear the blue square |
# |---|---|---|
# | image A: small red circle, large blue square | small | large |
# | image B: large red circle, small blue square | large | small |
#
# A sum cannot fill this table: switching the sound from the circle to the square changes the score by
# g(square) − g(circle) whatever the image, yet the answer must go *up* for image A and *down* for image B. It is
# the XOR pattern, and no f and g produce it. The trained models on exactly these four examples (score = logit of
# "large" minus logit of "small"):

# %%
pair = Scenes.from_objects([
    [{"colour": "red", "shape": "circle", "size": "small", "x": 0.3, "y": 0.5},
     {"colour": "blue", "shape": "square", "size": "large", "x": 0.7, "y": 0.5}],
    [{"colour": "red", "shape": "circle", "size": "large", "x": 0.3, "y": 0.5},
     {"colour": "blue", "shape": "square", "size": "small", "x": 0.7, "y": 0.5}]])
four = R.from_scenes("interaction", Scenes.cat([pair, pair]), torch.tensor([0, 0, 1, 1]))
four_features = R.features(four, visual, sound_encoder)
names = ["A, hear circle", "B, hear circle", "A, hear square", "B, hear square"]
with torch.no_grad():
    for method in ("late", "cross"):
        model = models["interaction", method].cpu()
        logits = model(*four_features.inputs(method))
        score = (logits[:, 1] - logits[:, 0]).tolist()
        print(f"{method:>5}: " + ",  ".join(f"{n}: {s:+.2f}" for n, s in zip(names, score)))
        print(f"       change from circle to square: image A {score[2] - score[0]:+.2f}, "
              f"image B {score[3] - score[1]:+.2f}   (right answers: {SIZES[four.labels[0]]}, "
              f"{SIZES[four.labels[1]]}, {SIZES[four.labels[2]]}, {SIZES[four.labels[3]]})")
display(show_images(four.images[:2], ["image A", "image B"], size=1.4))

# %% [markdown]
# For late fusion the change from circle to square is almost the same number for both images — the sum forces
# g(square) − g(circle), and only the small random detuning of each sound makes the two differ — so it gets at
# most one image of the pair right, and on the test set it does no better than a coin. Cross-attention's change has opposite signs for the two images: it answers all four.

# %% [markdown]
# ## 6. Where the sound looks
#
# In cross-attention fusion each sound token is a query over the 64 image tokens. Averaged over heads and sound
# tokens, that is one map over the 8 × 8 patch grid per example, drawn beside its image:

# %%
test = data["interaction"]["test"]
cross = models["interaction", "cross"].to(device)
with torch.no_grad():
    image, sound = (t.to(device) for t in features["interaction"]["test"].inputs("cross"))
    _, attn = cross(image, sound, return_attn=True)
attn = attn.cpu()
on_heard, on_other = R.attention_on_objects(attn, test)
show = list(range(8))
titles = [f"hear: {heard[i]}" for i in show]
display(plot_attention_beside(test.images[show], attn[show].view(-1, 8, 8), titles,
                              "sound → image attention (white line: the objects' outline)"))
print(f"attention on the patches of the object you hear: {on_heard.mean():.1%} on average; "
      f"on the other object's patches: {on_other.mean():.1%} (test set, {len(test)} examples)")

# %% [markdown]
# The sound finds its object: the attention mass on the heard object's patches is several times the mass on the
# other object's (the two averages printed above). That selection — *this* object, because of *that* sound — is
# exactly the interaction a sum of two separate verdicts cannot make.

# %% [markdown]
# ## 7. Missing modalities
#
# Back to the control task, where each modality alone suffices. First the single-modality ceilings: a model
# trained on the image alone, one on the sound alone. Then cross-attention fusion trained on both, tested with both,
# with the image missing, and with the sound missing — a missing stream is passed as `None` and read as zeros.
# Trained as usual, the fused model has never seen a stream of zeros. Trained with **modality dropout** (in half
# of the training examples one stream, chosen at random, is zeroed), it has.

# %%
control_train, control_test = features["control"]["train"], features["control"]["test"]
ceiling = {m: R.accuracy(R.train("late", control_train, seed=0, modalities=(m,), progress=False)[0], control_test)
           for m in ("image", "sound")}
missing_table = {}
for p in (0.0, 0.5):
    model, _ = R.train("cross", control_train, seed=0, modality_dropout=p, progress=False)
    missing_table[p] = {missing: R.accuracy(model, control_test, missing) for missing in (None, "image", "sound")}
print(f"single-modality ceilings: image only {ceiling['image']:.1%}, sound only {ceiling['sound']:.1%}")
print(f"{'cross-attention fusion':>32} | {'both':>6} | {'no image':>8} | {'no sound':>8}")
for p, row in missing_table.items():
    print(f"{f'modality dropout {p:g}':>32} | {row[None]:>6.1%} | {row['image']:>8.1%} | {row['sound']:>8.1%}")
kept = min(missing_table[0.5]["image"] / ceiling["sound"], missing_table[0.5]["sound"] / ceiling["image"])
kept_without = min(missing_table[0.0]["image"] / ceiling["sound"], missing_table[0.0]["sound"] / ceiling["image"])
print(f"worst share of the remaining modality's ceiling kept: {kept_without:.1%} without dropout, "
      f"{kept:.1%} with")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3))
cols = ["both", "no image", "no sound"]
for j, (p, row) in enumerate(missing_table.items()):
    values = [row[None], row["image"], row["sound"]]
    ax.bar([i + 0.38 * j for i in range(3)], values, width=0.36, label=f"modality dropout {p:g}")
ax.axhline(0.85 * min(ceiling.values()), color="k", ls="--", lw=1, label="85 % of the single-modality ceiling")
ax.set_xticks([i + 0.19 for i in range(3)], cols)
ax.set_ylabel("control accuracy")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
ax.set_title("cross-attention fusion with a modality missing at test time", fontsize=10)
fig.tight_layout()
display(fig)
plt.close(fig)

# %%
display(record("09", "missing modality: share of the single-modality ceiling kept with modality dropout", kept,
               0.85))

# %% [markdown]
# Without modality dropout one stream carries the model: take it away and accuracy falls towards chance, even
# though the other stream alone holds every answer (its ceiling printed above). With dropout the same architecture
# answers from either stream. Late fusion, for comparison, degrades gracefully by construction — it just leaves the
# missing modality's logits out — which is its one real strength.

# %% [markdown]
# ## 8. Spot the bug: a multimodal transformer from a tutorial
#
# A multimodal transformer you will meet in tutorials (the study guide has one) looks like this, condensed:
#
# ```python
# class MultimodalTransformer(nn.Module):
#     def __init__(self, d_model, n_heads, n_layers):
#         self.audio_proj = nn.Linear(audio_dim, d_model)          # audio_dim: never defined
#         self.modality_embed = nn.Embedding(3, d_model)
#         ...
#     def forward(self, audio, video, text):
#         ids = torch.zeros(audio.size(0), audio.size(1), dtype=torch.long)   # on the CPU, always
#         audio_tokens += self.modality_embed(ids)
# ```
#
# Three problems. `audio_dim` (and `video_dim`, `text_dim`, `num_classes`) are not arguments, so building the
# model raises `NameError` — and a sibling snippet calls `self.modality_embeddings`, an attribute that does not
# exist. The modality ids are made on the CPU whatever the model's device: on a GPU the embedding lookup fails. And
# the layer is `nn.TransformerEncoderLayer` with its defaults (post-LN, ReLU, 2048-wide FFN, dropout 0.1 — and
# without `batch_first=True` it would attend across the batch; chapter 01). The fix: pass every size in,
# create the ids with `device=tokens.device`, and use a pre-LN block:

# %%
class TutorialProjection(torch.nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.audio_proj = torch.nn.Linear(audio_dim, d_model)  # noqa: F821 -- the tutorial's undefined name


try:
    TutorialProjection(64)
except NameError as error:
    print("NameError:", error)
fusion = models["interaction", "transformer"].fusion
print("the course's MultimodalTransformerFusion makes its modality ids on the tokens' device:",
      "torch.arange(2, device=a.device)", "| its blocks are pre-LN:", fusion.transformer.resblocks[0].norm_first)

# %% [markdown]
# ## Summary
#
# - **Where modalities meet decides what a model can learn.** Late fusion is a sum of two verdicts: it cannot
#   express "the answer depends on which object the sound belongs to", and it stays at chance on that question
#   (section 4). Fusions with multiplicative or selective interactions — tensor fusion, cross-attention, a joint
#   transformer — answer it; cross-attention lands on the heard object (section 6).
# - **When each modality suffices**, every fusion works, and the cheap ones (late, concat) are as good as any.
# - **Missing modalities**: a fused model trained on both streams leans on one; take it away and it collapses.
#   Modality dropout — zeroing a whole stream for part of training — keeps it at the single-modality ceiling
#   (section 7).
#
# **Interview questions, answered from this notebook**
# - *What are the challenges in multimodal fusion?* Choosing where modalities interact (section 4: the
#   interaction task separates methods the control task does not), one modality dominating (section 7: the model
#   without dropout collapses without its favourite stream), and robustness to missing inputs.
# - *How would you handle missing modalities at inference?* Train with modality dropout so that the zeroed stream is
#   a familiar input (section 7's table), or fuse late when the modalities are independent, since late fusion simply
#   drops the missing term.
# - *Early vs late vs intermediate fusion?* Early fusion sees everything but must learn perception and interaction
#   from raw inputs; late fusion is modular and robust but cannot model interactions; intermediate fusion over
#   pretrained encoders with attention or products gets the interactions at modest cost (the seconds column).
#
# The exercises build tensor fusion and cross-attention fusion, fix a late fusion that mixes up its classes, and
# tune a modality-dropout rate.

# %%
lecture_seconds = time.perf_counter() - lecture_start
print(f"lecture ran in {lecture_seconds:.0f} s on {device}")
