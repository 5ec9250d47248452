# %% [markdown]
# # 00 · The multimodal landscape
#
# Welcome. This course builds the landmark multimodal models — CLIP, BLIP, LLaVA, DALL·E 2, audio-visual speech
# recognition, AudioCLIP, VideoBERT — from a small helper package, and trains each on a laptop CPU in minutes.
# That is possible because the course brings its own world: images of coloured shapes with captions, questions,
# sounds, speech and video, all generated on the spot from a seed. Nothing is downloaded.
#
# **By the end of the course you will be able to**
# - explain and build vision-language models (CLIP, BLIP, LLaVA) and a text-to-image pipeline (unCLIP);
# - align representations across modalities with contrastive learning, and measure the alignment;
# - build audio-visual models that stay robust when one modality is corrupted or missing;
# - choose and implement fusion strategies, training strategies and evaluation metrics — and know their pitfalls.
#
# **This chapter**: a set-up check, why multimodal learning is hard (four challenges, each with a small
# demonstration and the chapter that treats it), and a tour of every modality of the world.
# **Time**: under a minute on a CPU. **Prerequisites**: Python, PyTorch tensors.

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

import mmcourse
from mmcourse.data import (
    COLOUR_NAMES,
    EOT_ID,
    HELD_OUT,
    SHAPES,
    SPEECH_WORDS,
    Tokenizer,
    add_noise,
    annotator_answers,
    babble_noise,
    caption,
    corrupt_objects,
    log_mel_spectrogram,
    make_question,
    moving_shapes,
    object_sounds,
    random_sentences,
    render,
    sample_scenes,
    speak,
    talking_mouth,
)
from mmcourse.doctor import report
from mmcourse.metrics import vqa_score
from mmcourse.nn import eot_positions
from mmcourse.utils import get_device, seed_everything
from mmcourse.viz.world import play_audio, plot_spectrogram, show_images, show_video, video_strip

seed_everything(0)

# %% [markdown]
# ## 1. Set-up check
# What this kernel runs on — the same check as `python -m mmcourse.doctor` in a terminal (`make lab` runs it too):
# each package's version against the range the course supports, the device and its matrix-multiply speed, a
# writable model cache, and the widgets frontend. On Colab, pick *Runtime → Change runtime type → GPU* for the
# training chapters (each also runs on a CPU, just slower). The widgets in later chapters work with ipywidgets 7
# (Colab) and 8.

# %%
device = get_device()
text, environment_ok = report(speed_seconds=0.5)
print(text)
print(f"mmcourse {mmcourse.__version__}; this notebook computes on {device}"
      + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
x = torch.randn(256, 256, device=device)
assert torch.allclose((x @ x.T).cpu(), (x.cpu() @ x.cpu().T), atol=1e-3), "matrix multiply disagrees with the CPU"
print("tensor maths on", device, "agrees with the CPU ✓")

# %% [markdown]
# ## 2. Why multimodal?
#
# People do not learn "red" from text alone or "circle" from pixels alone: the word and the sight arrive together
# and explain each other. Multimodal models do the same. Each modality brings information the others lack (a caption
# says *which* object matters; the image says *where* it is), one modality can supervise another (captions label
# images for free), and a model that has aligned several modalities can transfer across them — classify images it
# was never given labels for, answer questions about them, draw them from text.
#
# ## 3. A tour of the world
# ### Images
# Scenes of 1–3 shapes (circle, square, triangle) in 8 colours and 2 sizes, rendered at any resolution with
# anti-aliased edges and a little colour jitter and pixel noise. Each object comes with its attributes and bounding
# box.

# %%
scenes = sample_scenes(8, seed=0, max_objects=3)
images = render(scenes, resolution=64, seed=0)
canonical = [caption(scenes.objects(i), augment=False) for i in range(len(scenes))]
show_images(images, canonical, boxes=scenes.boxes(64))

# %% [markdown]
# ### Captions
# Captions come from templates with paraphrases, synonyms, relations and optional position words, re-drawn each
# time (a model that sees one caption per image forever just memorises it). A chosen fraction can be *corrupted* —
# an attribute swapped, or a caption of another scene — with the ground truth kept, which chapter 04 needs to
# filter noisy web captions.

# %%
rng = random.Random(0)
objects = scenes.objects(1)
print("objects:", [(o["size"], o["colour"], o["shape"]) for o in objects])
for _ in range(5):
    print("  caption:  ", caption(objects, rng))
print("  corrupted:", caption(corrupt_objects(objects, rng, "swap"), augment=False), "  ← an attribute swapped")
print("  unrelated:", caption(corrupt_objects(objects, rng, "unrelated"), augment=False), "  ← another scene")

# %% [markdown]
# ### Held-out compositions
# Four colour–shape pairs never appear in the training split, although each colour and each shape does. Testing on
# them asks whether a model *composes* "green" and "triangle" or memorised pairs.

# %%
train = sample_scenes(5_000, seed=1, split="train")
pairs = {(COLOUR_NAMES[c], SHAPES[s]) for c, s in zip(train.colour[train.present].tolist(), train.shape[train.present].tolist())}
print("held out:", HELD_OUT)
print(f"pairs in 5000 training scenes: {len(pairs)} of {len(COLOUR_NAMES) * len(SHAPES)}; held-out pairs among them:",
      sorted(pairs & set(HELD_OUT)))

# %% [markdown]
# ### Questions and answers
# Questions about colour, shape, count, relations and existence (yes/no), with answers from a fixed list — the material for
# visual question answering and instruction tuning (chapter 05). For the VQA metric (chapter 03) a question also gets
# ten "annotator" answers that disagree in controlled ways.

# %%
for qtype in ("colour", "shape", "count", "relation", "exists"):
    qa = make_question(objects, rng, qtype)
    print(f"{qtype:9s} Q: {qa['question']:45s} A: {qa['answer']}")
answers = annotator_answers(qa["answer"], rng, n_match=2)
print("\nten annotators:", answers)
print(f"official VQA score of answering {qa['answer']!r}: {vqa_score(qa['answer'], answers):.2f} "
      "(two of ten agree — chapter 03 explains the number)")

# %% [markdown]
# ### Text as token ids
# Models read integer ids. The course's tokenizer is word-level: special tokens `<pad>`, `<sot>` (start),
# `<eot>` (end of text), `<unk>` and `<image>`, then the world's words. A batch is padded to one length; the
# end-of-text position — where CLIP's text encoder reads its summary — is found from the ids.

# %%
tok = Tokenizer()
batch_texts = ["a red circle", "a large blue square left of a small green circle"]
ids = tok(batch_texts, context_length=12)
print("vocabulary:", tok.vocab_size, "tokens")
print(ids)
print("end-of-text positions:", eot_positions(ids, EOT_ID).tolist())
print("decoded:", tok.decode_batch(ids))

# %% [markdown]
# ### Sound: speech you can play
# Synthetic speech at 8 kHz: each of the 16 words of the speech vocabulary is a distinct pair of formant tones with
# its own pitch glide, and sentences are words with gaps. A log-mel spectrogram (built from `torch.stft` in
# `mmcourse.data.audio`) shows the formants as bright bands — the picture audio models actually read.

# %%
speech = speak(random_sentences(2, seed=4, min_words=3, max_words=3), seed=4)
print(f"sample rate: {speech.sample_rate} Hz")
print(f"vocabulary ({len(SPEECH_WORDS)} words):", " ".join(SPEECH_WORDS))
print("sentence 0:", speech.transcripts()[0])
wave = speech.wave[0, : speech.lengths[0]]
play_audio(wave)

# %%
spec = log_mel_spectrogram(wave)
plot_spectrogram(spec, title=f"log-mel spectrogram: “{speech.transcripts()[0]}”", timings=speech.timings(0))

# %% [markdown]
# ### Sounds of objects
# For audio–image–text models (AudioCLIP, chapter 07) every object has a sound signature: its shape sets the timbre,
# its colour the pitch.

# %%
colour_ids = torch.tensor([COLOUR_NAMES.index("red"), COLOUR_NAMES.index("red"), COLOUR_NAMES.index("blue")])
shape_ids = torch.tensor([SHAPES.index("circle"), SHAPES.index("triangle"), SHAPES.index("circle")])
sounds = object_sounds(colour_ids, shape_ids, seed=0)
fig, axes = plt.subplots(1, 3, figsize=(12, 2.6))
for ax, sound, name in zip(axes, sounds, ["red circle", "red triangle", "blue circle"]):
    plot_spectrogram(log_mel_spectrogram(sound), title=name, ax=ax)
fig.tight_layout()
plt.show()
play_audio(torch.cat([sounds[0], torch.zeros(800), sounds[1], torch.zeros(800), sounds[2]]))

# %% [markdown]
# ### Video
# Clips of a shape moving left, right, up or down, slowly or quickly, bouncing off the walls, each with a caption
# (chapter 08 learns to describe them). The strip shows one clip frame by frame; the player below runs another.

# %%
clips = moving_shapes(2, seed=3, frames=12)
video_strip(clips.video[0], clips.captions[0])

# %%
show_video(clips.video[1], fps=6, caption=clips.captions[1])

# %% [markdown]
# And a talking mouth: a 16 × 16 video at 50 frames per second whose opening follows the loudness of the speech
# and whose shape depends on the word — the visual half of audio-visual speech recognition (chapter 07).

# %%
fps = 50
mouth, frames = talking_mouth(speech, fps=fps)
n = int(frames[0])
print(f"mouth video of sentence 0: {n} frames of {mouth.shape[-2]} × {mouth.shape[-1]} pixels at {fps} frames per "
      f"second ({n / fps:.2f} s)")
opening = 1 - mouth[0, :n, 0].mean((1, 2))  # the open mouth is dark: darkness per frame
hop = speech.sample_rate // fps  # audio samples per video frame
envelope = speech.envelope[0]
envelope = torch.nn.functional.pad(envelope, (0, -len(envelope) % hop)).view(-1, hop).mean(1)[:n]  # per frame
fig, ax = plt.subplots(figsize=(8, 2.6))
t = torch.arange(n) / fps
for series, label in [(envelope, "speech loudness"), (opening, "mouth opening (frame darkness)")]:
    ax.plot(t, (series - series.min()) / (series.max() - series.min()), label=label)
ax.set_xlabel("time (s)")
ax.set_ylabel("scaled to [0, 1]")
ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)  # above the curves
fig.tight_layout()
plt.show()
print(f"correlation of loudness and opening, frame by frame: {torch.corrcoef(torch.stack([opening, envelope]))[0, 1]:.2f}")

# %% [markdown]
# The same mouth as pictures, every 5th frame, each labelled with its time and the word being said then
# ("–" between words). Below the strip, the width of the open mouth (dark pixels across its widest row) while each
# word is said: the shape of the mouth, not only its opening, tells the words apart.

# %%
shown = range(0, n, 5)
words = speech.timings(0)
said = [next((w for w, a, b in words if a <= (i + 0.5) / fps < b), "–") for i in shown]
display(video_strip(mouth[0, :n], "sentence 0: " + speech.transcripts()[0], every=5, size=0.9,
                    labels=[f"{i / fps:.1f} s\n{w}" for i, w in zip(shown, said)]))
width = (mouth[0, :n, 0] < 0.3).sum(-1).amax(-1).float()  # dark pixels in the widest row, per frame
for w, a, b in words:
    inside = (t + 0.5 / fps >= a) & (t + 0.5 / fps < b) & (opening > 0.5 * opening.max())  # the mouth well open
    print(f"mouth width while saying {w!r:8}: {width[inside].mean():.1f} pixels")

# %% [markdown]
# ## 4. The four core challenges
# Each is a few lines here and a whole chapter later.
#
# **Alignment** — modalities have different structure: a grid of pixels, a sequence of words, a waveform at 8 000
# samples per second. Nothing says which word goes with which pixels or which sound. Learning a shared space in
# which matching pairs are close is *alignment* → chapter 02 (CLIP), chapter 07 (audio–image–text).

# %%
print("one scene, three modalities:")
print(f"  image  {tuple(images[1].shape)}  pixels on a grid")
print(f"  text   {tuple(tok([canonical[1]])[0].shape)}  token ids in a sequence: {canonical[1]!r}")
print(f"  speech {tuple(wave.shape)}  samples in time ({len(wave) / 8000:.2f} s)")

# %% [markdown]
# **Fusion** — some questions need two modalities at once. "What colour is the circle?" cannot be answered from the
# question (any colour is possible) nor from the image without the question (which object?). How and where to combine
# them — early, late, by cross-attention — is *fusion* → chapter 09, and chapters 04–05 for vision + language.

# %%
qs = [make_question(sample_scenes(1, seed=s, max_objects=3).objects(0), random.Random(s), "colour") for s in range(300)]
answers_seen = {q["answer"] for q in qs if q["question"].startswith("what colour is the circle")}
print(f"answers to 'what colour is the circle?' across scenes: {sorted(answers_seen)}")
print("→ the text alone leaves", len(answers_seen), "possibilities; the image alone does not say which object")

# %% [markdown]
# **Missing or corrupted modalities** — in a noisy room speech is drowned out, but the mouth still moves. A good
# model leans on whichever modality is reliable, and still works when one is missing → chapter 07 (robust AVSR),
# chapter 09 (modality dropout). Below: the same sentence at 0 dB signal-to-noise ratio in babble (other speakers).

# %%
babble = babble_noise(1, len(wave), seed=9)[0]
noisy = add_noise(wave, babble, snr_db=0.0)
measured = 10 * torch.log10(wave.pow(2).mean() / (noisy - wave).pow(2).mean())
print(f"measured SNR: {measured:.2f} dB")
plot_spectrogram(log_mel_spectrogram(noisy), title="the same sentence in babble at 0 dB", timings=speech.timings(0))

# %%
play_audio(noisy)

# %% [markdown]
# **Scalability** — real CLIP saw 400 million image–text pairs, 32 times over. Our models see tens of thousands,
# which is why they train on a CPU in minutes. At scale the data no longer fits anywhere one process can see it,
# the batch no longer fits one device, and the contrastive loss must gather embeddings across machines
# → chapter 11. A sense of the gap, on this machine:

# %%
start = time.perf_counter()
render(sample_scenes(5_000, seed=7), 32, seed=7)
per_second = 5_000 / (time.perf_counter() - start)
print(f"rendering: {per_second:,.0f} images per second at 32×32 — a course-sized set of 20 000 in {20_000 / per_second:.1f} s")
print(f"CLIP's 400M pairs × 32 epochs at that rate: {400e6 * 32 / per_second / 86400:,.0f} days, before any model runs")

# %% [markdown]
# ## Summary
# - The course's world is generated from a seed, offline: images with attributes and boxes, paraphrased and noisy
#   captions, questions with annotator answers, token ids, speech, object sounds, moving shapes and a talking mouth.
# - Multimodal learning has four core challenges — alignment, fusion, missing modalities, scale — and each has a
#   chapter.
#
# **Interview questions this course answers with evidence** (from the study guide):
# 1. *How do you align representations from different modalities?* — contrastive learning into a shared space;
#    chapter 02 trains CLIP and measures zero-shot accuracy and retrieval.
# 2. *What are the challenges in multimodal fusion?* — different rates and structures, one modality dominating;
#    chapters 09 and 10 show a case where late fusion fails and a fix for modality imbalance.
# 3. *How would you handle missing modalities at inference?* — train with modality dropout and gated fusion;
#    chapter 07 measures word error rates with audio drowned in babble.
# 4. *Early, late or intermediate fusion?* — chapter 09 compares them on one task, with each modality removed.
#
# **Exercises**: `exercises/00_landscape.ipynb` — noise at an exact SNR, padding a batch of token ids, the mel
# scale, and a graded question on decibels. **Next**: chapter 01 builds attention and the Vision Transformer.
