# %% [markdown]
# # 07 · Audio-visual models: lips help in noise, and sound finds words through pictures
#
# Two ideas, one chapter. **Audio-visual speech recognition** (AVSR) reads the lips beside the sound: when other
# people talk over the speaker, the ears fail first and the eyes keep working. **AudioCLIP / ImageBind** bind a
# third modality to CLIP through images alone: an audio encoder trained only against pictures ends up next to the
# *words* for those pictures, a pairing it never saw.
#
# **You will be able to**
# - read speech from log-mel audio and from mouth video with CTC, and decode its output greedily;
# - fuse two streams frame by frame, by concatenation and by a learned gate, and measure word error rate (WER) against
#   the signal-to-noise ratio (SNR) of babble noise;
# - use modality dropout so that a model still works when one stream is missing;
# - bind audio to CLIP's image space and measure the audio → text retrieval that emerges.
#
# **Time**: about 2 minutes on a 2-core laptop CPU with the course's model zoo holding the four recognisers
# (training them adds about 2½ minutes); well under a minute on a GPU.
# **Prerequisites**: chapter 02 (CLIP, whose trained model the last part loads), chapter 09's idea of modality
# dropout helps but is not needed.

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

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import display

from mmcourse import zoo
from mmcourse.data import CLASS_NAMES
from mmcourse.data.audio import SPEECH_WORDS, add_noise, log_mel_spectrogram
from mmcourse.metrics.speech import word_error_rate
from mmcourse.models.avsr import VisualFrontEnd, ctc_greedy_decode, ctc_loss
from mmcourse.recipes import audioclip_tiny as A
from mmcourse.recipes import avsr_tiny as R
from mmcourse.recipes.clip_tiny import class_weights
from mmcourse.results import record
from mmcourse.utils import get_device, seed_everything
from mmcourse.viz import play_audio, plot_matrices, plot_spectrogram, video_strip

seed_everything(0)
device = get_device()
print("device:", device)
lecture_start = time.perf_counter()

# %% [markdown]
# ## 1. Speech, babble and the talking mouth
#
# The world speaks sentences of its 16 words ("one" … "five", the eight colours, the three shapes), each word two
# formant tones at the speaker's pitch, 8 000 samples per second. The noise is **babble**: four other talkers saying
# the same kind of words, mixed in at an exact SNR = 10 log₁₀(P_speech / P_noise) dB. At 0 dB the babble is as loud
# as the speaker. Listen to both, and look at their log-mel spectrograms (40 mel bands, 100 frames per second):

# %%
test, test_babble = R.test_set()
k = 3
n_samples = int(test.speech.lengths[k])
clean = test.speech.wave[k, :n_samples]
noisy = add_noise(clean[None], test_babble[k:k + 1, :n_samples], 0.0)[0]
spec = log_mel_spectrogram(clean)
print("sentence:", test.transcripts()[k])
print(f"{test.speech.sample_rate} samples per second; log-mel of {spec.shape[0]} bands × {spec.shape[1]} frames "
      f"for {n_samples / test.speech.sample_rate:.2f} s")
fig, axes = plt.subplots(1, 2, figsize=(12, 2.8))
plot_spectrogram(spec, title="clean", timings=test.speech.timings(k), ax=axes[0])
plot_spectrogram(log_mel_spectrogram(noisy), title="babble at 0 dB", timings=test.speech.timings(k), ax=axes[1])
fig.tight_layout()
plt.show()
display(play_audio(clean), play_audio(noisy))

# %% [markdown]
# The babble's formants sit where the speaker's do: no filter separates them. The mouth video (16 × 16 pixels, 50
# frames per second) does not hear the babble at all. Its camera is noisy, though (pixel noise of standard deviation
# 0.25, about the contrast between lips and skin), so the lips alone are an imperfect witness. Every 6th frame, with
# the word being said:

# %%
n_frames = int(test.lengths[k])
shown = range(0, n_frames, 6)
said = [next((w for w, a, b in test.speech.timings(k) if a <= (i + 0.5) / 50 < b), "–") for i in shown]
print(f"{n_frames} frames for {n_samples} audio samples; camera noise {R.CAMERA_NOISE}")
display(video_strip(test.video[k, :n_frames], test.transcripts()[k], every=6, size=0.9,
                    labels=[f"{i / 50:.2f} s\n{w}" for i, w in zip(shown, said)]))

# %% [markdown]
# ## 2. CTC: a transcript without a timing
#
# The recogniser emits, for every video frame (20 ms), a distribution over 17 classes: the 16 words and a **blank**.
# The training data say *which* words were spoken, not *when*. CTC (Graves et al., 2006) sums the probability of
# every frame-level path that reads as the transcript once repeats are merged and blanks dropped
# ("_ red red _ _ circle" → "red circle"), with a forward algorithm over the alignment lattice. `torch`'s
# `F.ctc_loss` wants log-probabilities shaped (T, N, C), targets without the blank, and each utterance's own frame
# and target counts; `mmcourse.models.avsr.ctc_loss` takes (N, T, C) and checks that every target can be emitted
# (a repeated word needs a blank between its copies, so it costs an extra frame).
#
# Load the four recognisers of this chapter (audio only, video only, concatenation and gated fusion; section 3
# says how they are built and trained) and watch the gated one read the sentence at 0 dB:

# %%
start = time.perf_counter()
models = zoo.load("avsr-tiny", device=device)
history = zoo.history("avsr-tiny")
print(f"ready in {time.perf_counter() - start:.0f} s; trained in {history.seconds:.0f} s")

index = torch.tensor([k])
mel, video, lengths = R.batch(test, index, torch.tensor([0.0]), test_babble, index)
with torch.no_grad():
    log_probs = models["gated"](mel.to(device), video.to(device), lengths.to(device)).cpu()
targets, target_lengths = test.targets[index], test.target_lengths[index]
print(f"CTC loss of the true transcript: {ctc_loss(log_probs, lengths, targets, target_lengths):.3f} "
      f"(per word; uniform guessing would give {ctc_loss(torch.full_like(log_probs, -2.833), lengths, targets, target_lengths):.1f})")
path = log_probs[0].argmax(-1)
collapsed = [c for i, c in enumerate(path.tolist()) if i == 0 or c != path[i - 1]]
print("best class per frame:", " ".join("_" if c == 0 else SPEECH_WORDS[c - 1] for c in path.tolist()))
print("repeats merged:      ", " ".join("_" if c == 0 else SPEECH_WORDS[c - 1] for c in collapsed))
print("blanks dropped:      ", " ".join(SPEECH_WORDS[c - 1] for c in ctc_greedy_decode(log_probs, lengths)[0]))

fig, ax = plt.subplots(figsize=(11, 3.4))
image = ax.imshow(log_probs[0].T.exp(), aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1)
ax.plot(range(len(path)), path, "c.", markersize=4, label="best class per frame")
ax.set_yticks(range(17), ["blank"] + list(SPEECH_WORDS), fontsize=7)
ax.set_xlabel("video frame (20 ms)")
for _, a, b in test.speech.timings(k):
    ax.axvspan(a * 50, b * 50, color="white", alpha=0.12)
ax.set_title("per-frame probabilities at 0 dB (shaded: when each word is said)")
ax.legend(loc="upper right", fontsize=8)
fig.colorbar(image, ax=ax, label="probability")
fig.tight_layout()
plt.show()

# %% [markdown]
# CTC's output is **peaky**: blank almost everywhere, and each word one or two frames of high probability somewhere
# inside the time it is said. Greedy decoding — the most likely class per frame, repeats merged, blanks dropped — is
# then nearly as good as a search over paths. The loss is per target word (torch's default "mean"), so it can be
# compared across sentences of different lengths.
#
# ## 3. Four recognisers
#
# Each has a **front end** per stream and a temporal convolution network (residual 1-D convolutions with dilations
# 1 and 2, padded frames masked):
#
# - audio: the log-mel with each band's mean over the utterance removed (cepstral mean normalisation), then two
#   1-D convolutions, the first of stride 2 to go from 100 audio frames per second to the video's 50;
# - video: each pixel's mean over the utterance removed (the still face: what is left is the moving mouth), a 2-D
#   convolution per frame, then a 3-D convolution (kernel 3 in time), flattened per frame;
# - fusion, frame by frame: **concatenation** Linear([a_t; v_t]), or a **gate** g_t = σ(MLP([a_t; v_t])) and
#   g_t a_t + (1 − g_t) v_t — one number per frame saying how much to trust the audio;
# - a last temporal network, a LayerNorm and a linear layer to the 17 classes.
#
# Small details decided whether training worked in 600 steps. Without the video's mean removal the video-only model
# learned far more slowly; without the last LayerNorm it stalled on CTC's early plateau (blank everywhere) for one
# training seed in five. And padded frames are zeroed inside every front end, so a sentence reads the same alone as in
# a batch of longer ones.
#
# All four are trained on the same 3 000 sentences for the same 600 steps (batches of 32), with babble at a random
# SNR between −10 and 20 dB (a fifth of the sentences clean). The fused models also get **modality
# dropout**: a quarter of their sentences lose one whole stream (zeros), so they learn to answer from either.
# Their training losses:

# %%
fig, ax = plt.subplots(figsize=(7, 3))
steps = [e["step"] for e in history.evals]
for name in R.MODELS:
    ax.plot(steps, [e[name] for e in history.evals], label=name)
ax.set_xlabel("step")
ax.set_ylabel("CTC loss (mean over 10 steps)")
ax.set_yscale("log")
ax.legend()
fig.tight_layout()
plt.show()
print(f"{R.POOL} sentences, {R.STEPS} steps, batches of {R.BATCH_SIZE}, babble SNR uniform in {R.TRAIN_SNR} dB, "
      f"{R.P_CLEAN:.0%} clean, modality dropout {R.P_DROP} for the fused models")
print("final loss (last 10 steps):", {name: round(history.evals[-1][name], 3) for name in R.MODELS})

# %% [markdown]
# All four sit on CTC's plateau at first (blank everywhere, the loss flat near 3) before the words appear. The
# audio-only model ends highest: a training sentence drowned in babble at −10 dB leaves it little to read.

# %% [markdown]
# ## 4. The headline: word error rate against babble
#
# WER = (substitutions + deletions + insertions) / reference words (chapter 03), on 300 new sentences, each mixed
# with its own babble at −5, 0, 5, 10 and 20 dB:

# %%
start = time.perf_counter()
wers = R.wer_by_snr(models, test, test_babble)
print(f"WER of {len(test)} sentences at each SNR ({time.perf_counter() - start:.1f} s)")
print("SNR (dB)  " + "".join(f"{s:>8}" for s in R.SNRS))
for name, row in wers.items():
    print(f"{name:9s} " + "".join(f"{w:8.3f}" for w in row))
zero = R.SNRS.index(0)
ratio = wers["gated"][zero] / wers["audio"][zero]
best_single = [min(a, v) for a, v in zip(wers["audio"], wers["video"])]
margin = 100 * max(g - b for g, b in zip(wers["gated"], best_single))
print(f"at 0 dB: gated fusion {wers['gated'][zero]:.3f} against audio alone {wers['audio'][zero]:.3f} "
      f"(ratio {ratio:.3f})")
print(f"gated minus the better single stream, at its worst SNR: {margin:+.1f} points")

# %%
display(record("07", "WER at 0 dB babble: gated fusion / audio only", ratio, 0.5, higher_is_better=False,
               seconds=history.seconds))
display(record("07", "gated fusion minus the better single stream, worst SNR −5…20 dB (WER points)", margin, 2.0,
               higher_is_better=False, seconds=history.seconds))

# %% [markdown]
# Audio alone falls apart as the babble grows louder. The lips do not hear the babble: the video-only model's error
# is the same at every SNR. Both fused models beat **both** single streams at every SNR: at 0 dB the gated model's
# error is 0.088 of the audio model's (bar ≤ 0.5). Concatenation does as well as the gate here, on every seed (the
# bands below); what the gate adds is a weight you can read (section 5).

# %% [markdown]
# One training run could be lucky. `benchmarks/bench_seeds_avsr.py` trains the four models from seeds 0–4 (one
# thread each) and measures them on the same sentences; its numbers, copied here, are the error bars below:

# %%
# seed -> model -> WER at -5, 0, 5, 10, 20 dB (benchmarks/bench_seeds_avsr.py, 1 thread)
SEED_WERS = {
    0: {"audio": (0.758, 0.402, 0.117, 0.041, 0.015), "video": (0.087, 0.087, 0.087, 0.087, 0.087), "concat": (0.057, 0.035, 0.014, 0.004, 0.003), "gated": (0.059, 0.033, 0.015, 0.008, 0.002)},
    1: {"audio": (0.741, 0.388, 0.110, 0.040, 0.012), "video": (0.117, 0.117, 0.117, 0.117, 0.117), "concat": (0.058, 0.027, 0.017, 0.009, 0.003), "gated": (0.057, 0.029, 0.016, 0.007, 0.004)},
    2: {"audio": (0.759, 0.361, 0.111, 0.052, 0.013), "video": (0.092, 0.092, 0.092, 0.092, 0.092), "concat": (0.071, 0.033, 0.016, 0.011, 0.004), "gated": (0.059, 0.031, 0.015, 0.009, 0.002)},
    3: {"audio": (0.755, 0.373, 0.105, 0.044, 0.011), "video": (0.090, 0.090, 0.090, 0.090, 0.090), "concat": (0.063, 0.034, 0.015, 0.011, 0.005), "gated": (0.083, 0.042, 0.021, 0.013, 0.003)},
    4: {"audio": (0.748, 0.361, 0.118, 0.045, 0.013), "video": (0.100, 0.100, 0.100, 0.100, 0.100), "concat": (0.075, 0.037, 0.021, 0.011, 0.003), "gated": (0.060, 0.028, 0.012, 0.007, 0.002)},
}
spread = {name: torch.tensor([SEED_WERS[s][name] for s in SEED_WERS]) for name in R.MODELS}
fig, ax = plt.subplots(figsize=(7, 3.6))
for name in R.MODELS:
    line, = ax.plot(R.SNRS, wers[name], "o-", label=name)
    ax.fill_between(R.SNRS, spread[name].min(0).values, spread[name].max(0).values, alpha=0.2, color=line.get_color())
ax.set_xlabel("SNR of the babble (dB)")
ax.set_ylabel("word error rate")
ax.set_xticks(R.SNRS)
ax.legend(title="this run (bands: seeds 0–4)")
fig.tight_layout()
plt.show()
for name in R.MODELS:
    print(f"{name:7s} over the seeds: " + " ".join(f"{a:.3f}–{b:.3f}" for a, b in
                                                    zip(spread[name].min(0).values, spread[name].max(0).values)))
zero_ratios = [SEED_WERS[s]["gated"][zero] / SEED_WERS[s]["audio"][zero] for s in SEED_WERS]
margins = [100 * max(g - min(a, v) for g, a, v in zip(*(SEED_WERS[s][n] for n in ("gated", "audio", "video"))))
           for s in SEED_WERS]
print(f"over the seeds: gated / audio at 0 dB {min(zero_ratios):.3f}–{max(zero_ratios):.3f} (bar ≤ 0.5); gated minus "
      f"the better single stream at its worst SNR {min(margins):+.1f} to {max(margins):+.1f} points (bar ≤ +2)")

# %% [markdown]
# ## 5. The gate at work
#
# The gate g_t is the share of the audio in frame t. On the same sentence at 20 dB and at −5 dB:

# %%
fig, ax = plt.subplots(figsize=(8, 3))
gates = {}
for snr in (20.0, -5.0):
    mel, video, lengths = R.batch(test, index, torch.tensor([snr]), test_babble, index)
    with torch.no_grad():
        _, gate = models["gated"](mel.to(device), video.to(device), lengths.to(device), return_gate=True)
    gates[snr] = gate[0].cpu()
    ax.plot(torch.arange(len(gates[snr])) / 50, gates[snr], label=f"{snr:+.0f} dB")
for word, a, b in test.speech.timings(k):
    ax.axvspan(a, b, color="grey", alpha=0.12)
    ax.text((a + b) / 2, 1.02, word, ha="center", fontsize=8)
ax.set_ylim(0, 1.1)
ax.set_xlabel("time (s); grey: a word is said")
ax.set_ylabel("gate g (trust in audio)")
ax.legend(loc="center right")
fig.tight_layout()
plt.show()
gate_all, gate_emit = {}, {}
idx = torch.arange(100)
for snr in R.SNRS:
    mel, video, lengths = R.batch(test, idx, torch.full((100,), float(snr)), test_babble, idx)
    with torch.no_grad():
        log_probs, gate = models["gated"](mel.to(device), video.to(device), lengths.to(device), return_gate=True)
    real = torch.arange(gate.shape[1]) < lengths[:, None]
    emits = real & (log_probs.cpu().argmax(-1) != 0)  # the frames where a word is emitted
    gate_all[snr], gate_emit[snr] = gate.cpu()[real].mean().item(), gate.cpu()[emits].mean().item()
print("SNR (dB)                        " + "".join(f"{s:>7}" for s in R.SNRS))
print("mean gate, all frames           " + "".join(f"{gate_all[s]:7.3f}" for s in R.SNRS))
print("mean gate, frames emitting words" + "".join(f"{gate_emit[s]:7.3f}" for s in R.SNRS))

# %% [markdown]
# Averaged over all frames the gate hardly moves with the SNR: most frames lie inside or between words, where the
# model emits blank. The gate rises near the end of each word, where the model emits it (the curve above), and at
# those frames the audio's share grows with the SNR, from 0.355 at −5 dB to 0.478 at 20 dB: the gate listens more when
# the audio is clean, and never trusts it alone.

# %% [markdown]
# ## 6. A missing stream, and what modality dropout buys
#
# The camera fails, or the microphone does: the missing stream is zeros. The gated model was trained with modality
# dropout. The same model trained without it (the same 600 steps, p = 0) is trained now, and both are asked with one
# stream missing, on clean speech:

# %%
train_data = R.utterances(R.POOL, seed=7)
train_babble = R.babble_bank(train_data, seed=8)
seed_everything(0)
no_dropout = R.build()["gated"]
R.train_one(no_dropout, train_data, train_babble, p_drop=0.0, device=device, desc="gated, no modality dropout")


def missing_wer(model, drop, snr=None):
    idx = torch.arange(len(test))
    snr = None if snr is None else torch.full((len(test),), float(snr))
    mel, video, lengths = R.batch(test, idx, snr, test_babble, idx)
    if drop == "audio":
        mel = torch.zeros_like(mel)
    if drop == "video":
        video = torch.zeros_like(video)
    return word_error_rate(R.transcribe(model, mel, video, lengths), test.transcripts())


rows = {"gated, dropout 0.25": models["gated"], "gated, no dropout": no_dropout}
missing = {name: {drop: missing_wer(m, drop) for drop in (None, "audio", "video")} for name, m in rows.items()}
print(f"{'':22s}{'both':>8}{'no audio':>10}{'no video':>10}   (clean speech)")
for name, row in missing.items():
    print(f"{name:22s}{row[None]:8.3f}{row['audio']:10.3f}{row['video']:10.3f}")
print(f"{'audio-only model':22s}{'':8s}{'':10s}{missing_wer(models['audio'], None):10.3f}")
print(f"{'video-only model':22s}{'':8s}{missing_wer(models['video'], None):10.3f}")

# %% [markdown]
# Without modality dropout, turning the camera off leaves the model reading no word right (WER 1.000): it never
# learned to answer from the audio alone. With dropout it reads 0.004, as well as the audio-only model (0.001). With
# the microphone off both models read from the lips (0.137 and 0.190), a little worse than the video-only model
# (0.087), which was trained for nothing else. Missing streams are zeros here, exactly what dropout showed the model
# in training; a stream that is present but broken (a frozen frame, a clipped microphone) is another problem.

# %% [markdown]
# ## 7. Three modalities: audio bound to CLIP through images
#
# Every object of the world has a sound: its colour sets the pitch, its shape the timbre. AudioCLIP and ImageBind
# train an audio encoder with CLIP's contrastive loss against the **frozen** image tower: (sound of object i, image of
# object i) are the positive pairs of a batch. No text is involved. Then ask the audio encoder to pick, among the 24
# class prompts of chapter 02's zero-shot classifier ("a photo of a red circle", …), the one for the object it
# hears.

# %%
clip = zoo.load("clip-tiny", device=device)
sounds = A.sounding_objects(A.TRAIN_SOUNDS, clip=clip)
seed_everything(0)
audio_tower = A.build()
audio_history = A.train(audio_tower, sounds, device=device)
new_sounds = A.sounding_objects(1000, seed=1001, clip=clip)
held_out_sounds = A.sounding_objects(200, seed=1002, split="test", clip=clip)
tri = A.evaluate(audio_tower, clip, new_sounds)
tri_held = A.evaluate(audio_tower, clip, held_out_sounds)
print(f"{len(sounds.mel)} training sounds (20 colour-shape pairs), {A.STEPS} steps in {audio_history.seconds:.0f} s")
print(f"new sounds of seen pairs: audio -> image {tri['audio->image']:.3f}, audio -> text {tri['audio->text']:.3f} "
      f"(chance {tri['chance']:.3f}, {tri['audio->text'] / tri['chance']:.0f}x chance)")
print(f"sounds of the 4 held-out pairs: audio -> text {tri_held['audio->text']:.3f}")
display(record("07", "emergent audio → text zero-shot accuracy / chance (24 classes)",
               tri["audio->text"] / tri["chance"], 5.0, seconds=audio_history.seconds))

# %% [markdown]
# No sound was ever paired with a sentence, yet each new sound of a seen pair finds its class prompt (1.000, 24 times
# chance): the audio was pulled to the images, and CLIP had already put the images next to their words. The sounds of
# the 4 held-out pairs are another story (0.080, about twice chance): the audio encoder never heard those
# pitch–timbre combinations, and unlike CLIP's text tower it does not compose "green" and "triangle". The class
# means, sound against image and sound against prompt, look alike:

# %%
audio = A.audio_embeddings(audio_tower, new_sounds.mel)
labels = new_sounds.label
present = labels.unique()
audio_means = torch.nn.functional.normalize(torch.stack([audio[labels == c].mean(0) for c in present]), dim=-1)
image_means = torch.nn.functional.normalize(torch.stack([new_sounds.image_embeds[labels == c].mean(0) for c in present]), dim=-1)
text = class_weights(clip).cpu().T[present]
fig = plot_matrices([(audio_means @ image_means.T, "audio → image (trained)", "auto"),
                     (audio_means @ text.T, "audio → text (never trained)", "auto")],
                    xlabel="class (image / prompt)", ylabel="class of the sound", size=4.2)
display(fig)
print("classes:", ", ".join(f"{i}: {CLASS_NAMES[c]}" for i, c in enumerate(present.tolist())))

# %% [markdown]
# The diagonal is bright in both; off it, the sounds of one colour (neighbouring rows) resemble each other's images and
# prompts more than the other classes'.
#
# ## 8. Listen and read: the recognisers at any SNR
#
# Pick an SNR and one of the test sentences: hear the noisy sentence, see it, and read what each model transcribed.

# %%
snr_slider = widgets.SelectionSlider(options=list(R.SNRS), value=0, description="SNR (dB)")
sentence = widgets.IntSlider(value=k, min=0, max=len(test) - 1, description="sentence")


def listen(snr, i):
    i = int(i)
    idx = torch.tensor([i])
    n = int(test.speech.lengths[i])
    wave = add_noise(test.speech.wave[i:i + 1, :n], test_babble[i:i + 1, :n], float(snr))[0]
    display(play_audio(wave))
    display(plot_spectrogram(log_mel_spectrogram(wave), title=f"sentence {i} in babble at {snr} dB",
                             timings=test.speech.timings(i)))
    mel, video, lengths = R.batch(test, idx, torch.tensor([float(snr)]), test_babble, idx)
    print(f"said:            {test.transcripts()[i]}")
    for name, m in models.items():
        print(f"{name + ' heard:':16s} {R.transcribe(m, mel, video, lengths)[0]}")


display(widgets.VBox([widgets.HBox([snr_slider, sentence]),
                      widgets.interactive_output(listen, {"snr": snr_slider, "i": sentence})]))

# %% [markdown]
# ## 9. Spot the bug: channels mixed with time
#
# A common way to write the visual front end — the study guide's among them — flattens the 3-D convolution's output
# (B, C, T, H, W) with `view(B, T, -1)`. That runs without an error, because the sizes multiply out, but it takes the
# memory in its order: "frame" t of the result holds a slice of one channel across several times. The right way moves
# time next to the batch first: `permute(0, 2, 1, 3, 4).flatten(2)`. On a toy tensor, then on the gated recogniser:
# the same initial weights (but the front end), the same 600 steps, only the flatten differs.

# %%
class ViewFrontEnd(VisualFrontEnd):
    @staticmethod
    def frames(features):  # (B, C, T, H', W') -> (B, T, C·H'·W')
        return features.view(features.shape[0], features.shape[2], -1)  # the bug: channels mixed with time


toy = torch.arange(2 * 3).view(1, 2, 3, 1, 1)  # B=1, C=2, T=3: entry = c * 3 + t
print("(B, C, T) =", tuple(toy.shape[:3]), "entries c*3+t:", toy.flatten().tolist())
print("view(B, T, -1):             ", toy.view(1, 3, -1).tolist())
print("permute(0, 2, 1, ...).flatten:", toy.permute(0, 2, 1, 3, 4).flatten(2).tolist())

buggy = R.build()["gated"]
buggy.video["front"] = ViewFrontEnd()
R.train_one(buggy, train_data, train_babble, device=device, desc="gated, view(B, T, -1)")
buggy_wers = R.wer_by_snr({"view(B, T, -1)": buggy, "permute first": models["gated"]}, test, test_babble)
print("SNR (dB)        " + "".join(f"{s:>8}" for s in R.SNRS))
for name, row in buggy_wers.items():
    print(f"{name:15s} " + "".join(f"{w:8.3f}" for w in row))

# %% [markdown]
# Nothing raised an error, and the loss went down, but with `view(B, T, -1)` the fused model reads no better than the
# audio alone at any SNR (0.741 at −5 dB, against the audio-only model's 0.742): the lips, scrambled across time,
# carry nothing the per-frame fusion can use. Only a measurement at low SNR shows it.

# %% [markdown]
# ## Summary
#
# - CTC trains a recogniser from transcripts without timings; greedy decoding reads its peaky output.
# - Babble overlaps speech in frequency, so the audio-only recogniser degrades steadily as the SNR falls, while the
#   lips do not hear it. Fused frame by frame, the two streams beat either alone at every SNR; the gate shows how
#   much of the audio each frame uses.
# - Modality dropout teaches a fused model to work with a stream missing; without it, a missing camera is fatal.
# - A reshape that mixes channels with time raises no error and throws the lips away: measure, do not assume.
# - An audio encoder bound to CLIP's frozen image space retrieves text it never heard paired with a sound, for the
#   sounds it was trained on; it does not compose new ones.
#
# **Interview questions, answered from this notebook.** *Why babble and not white noise?* White noise covers all
# frequencies evenly and is easy to tell from speech; babble is speech, with formants where the speaker's are, so
# only a second modality separates them. *Why does the visual stream matter most at low SNR?* The video's error
# does not depend on the audio's noise (section 4's flat line), while the audio's rises as the SNR falls; at high SNR
# the audio alone is nearly perfect and there is little left to fix.
# *What is emergent alignment?* Section 7: audio → text works because both are aligned to images.
#
# **Exercises** (`exercises/07_audio_visual.ipynb`): greedy CTC decoding; the gated fusion; fix the channels/time
# reshape; an experiment with the modality-dropout rate; graded questions.

# %%
print(f"lecture ran in {time.perf_counter() - lecture_start:.0f} s")
