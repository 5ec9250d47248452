# %% [markdown]
# # 07 · Exercises: audio-visual speech recognition
#
# The pieces of an audio-visual recogniser that fit in a few lines: reading CTC's output, fusing two streams with a
# learned gate, a reshape that tutorials get wrong, and a training knob for a missing stream. Two functions to
# build, one to fix, a rate to choose, and questions on the chapter — each checked against the course's reference.
# Write the body of each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓
# when your answer is right, or what was expected, what came out and a hint.
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

from mmcourse.data.audio import SPEECH_WORDS
from mmcourse.grading import check

# %% [markdown]
# ## 1. Greedy CTC decoding
#
# A CTC model gives log-probabilities (B, T, C) per frame, class 0 the blank and 1 … C − 1 the words. Decode each
# utterance b from its first `lengths[b]` frames only (the rest is padding): take the most likely class per frame,
# merge runs of the same class into one, then drop the blanks. Return a list of B lists of class ids. Mind the order:
# "red _ red" is two words.


# %%
def greedy_decode(log_probs, lengths):
    """log_probs (B, T, C), lengths (B,) -> list of B lists of ids in 1..C-1."""
    # BEGIN SOLUTION
    out = []
    for path, n in zip(log_probs.argmax(-1).tolist(), lengths.tolist()):
        path = path[:n]
        out.append([c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])])
    return out
    # END SOLUTION


# %%
check("07.greedy_decode", greedy_decode)

# %% [markdown]
# For example, a best path that says "red" for two frames, a blank, "red" again, then "circle":

# %%
red, circle = SPEECH_WORDS.index("red") + 1, SPEECH_WORDS.index("circle") + 1
path = torch.tensor([[0, red, red, 0, red, circle, 0]])
log_probs = torch.nn.functional.one_hot(path, len(SPEECH_WORDS) + 1).float().mul(5).log_softmax(-1)
try:
    print([SPEECH_WORDS[c - 1] for c in greedy_decode(log_probs, torch.tensor([7]))[0]])
except NotImplementedError:
    print("write greedy_decode above first")

# %% [markdown]
# ## 2. The gated fusion
#
# Two aligned streams a and v (B, T, D) — audio and video features, frame by frame — and a small network `gate`
# from 2D features to 1 number per frame. The gate's trust in the audio at frame t is g_t = σ(gate([a_t; v_t]))
# (concatenate a before v on the last dimension). Return the fused frames g_t · a_t + (1 − g_t) · v_t (B, T, D) and
# g as (B, T).


# %%
def gated_fusion(a, v, gate):
    """a, v (B, T, D); gate: (B, T, 2D) -> (B, T, 1). Returns (fused (B, T, D), g (B, T))."""
    # BEGIN SOLUTION
    g = torch.sigmoid(gate(torch.cat([a, v], -1)))
    return g * a + (1 - g) * v, g[..., 0]
    # END SOLUTION


# %%
check("07.gated_fusion", gated_fusion)

# %% [markdown]
# ## 3. Fix: channels mixed with time
#
# A visual front end's 3-D convolution returns features (B, C, T, H, W). The recogniser needs one vector per frame:
# (B, T, C·H·W), each frame's values in (channel, row, column) order, which is what its projection was trained on.
# This version, common in tutorials, runs without an error. Find what it does wrong and fix it.


# %%
def frames(features):
    """(B, C, T, H, W) -> (B, T, C·H·W)."""
    # BEGIN SOLUTION
    B, C, T, H, W = features.shape
    return features.permute(0, 2, 1, 3, 4).reshape(B, T, C * H * W)
    # BUGGY
    # B, C, T, H, W = features.shape
    # return features.view(B, T, -1)
    # END SOLUTION


# %%
check("07.fix_reshape", frames)

# %% [markdown]
# ## 4. Experiment: a model that survives a broken camera
#
# The check trains the chapter's gated model for 300 steps (about 40 s on a laptop CPU) with the modality-dropout
# rate you choose — the share of training sentences that lose one whole stream, audio or video at random — then
# turns the camera off (video all zeros) and reads 300 new clean sentences from the audio alone. Reach a WER of at
# most 0.25. The lecture's section 6 compared a model with dropout and one without.


# %%
def my_dropout():
    """-> {"p_drop": float in [0, 1]}"""
    # BEGIN SOLUTION
    return {"p_drop": 0.25}
    # END SOLUTION


# %%
check("07.dropout_rate", my_dropout)

# %% [markdown]
# ## 5. Check yourself
#
# **Q1.** Why does the chapter test its recognisers in babble noise rather than white noise?
# (a) white noise cannot be mixed at an exact SNR · (b) babble overlaps speech in frequency and in how it changes
# over time, so the audio alone cannot separate it, while the lips are untouched · (c) babble is louder than white
# noise at the same SNR · (d) the mouth video is disturbed by white noise

# %%
answer_babble = "b"  # SOLUTION

# %%
check("07.quiz_babble", answer_babble)

# %% [markdown]
# **Q2.** Where along the SNR axis does the visual stream help the fused model most?
# (a) at low SNR, where the audio is drowned and the lips are not · (b) at high SNR, where both streams are clean
# and agree · (c) equally at every SNR: the video adds a fixed amount · (d) nowhere: the fused model follows the audio

# %%
answer_low_snr = "a"  # SOLUTION

# %%
check("07.quiz_low_snr", answer_low_snr)

# %% [markdown]
# **Q3.** At least how many frames does CTC need to emit the transcript "red red circle"?

# %%
answer_ctc_frames = 4  # SOLUTION

# %%
check("07.quiz_ctc_frames", answer_ctc_frames)
