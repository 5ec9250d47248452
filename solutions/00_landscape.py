# %% [markdown]
# # 00 · Exercises: the multimodal landscape
#
# Three small tools every later chapter relies on, and one question to check yourself. Write the body of each
# function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your answer is right,
# or what was expected, what came out and a hint.
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

from mmcourse.data import EOT_ID, PAD_ID
from mmcourse.grading import check

# %% [markdown]
# ## 1. Noise at an exact signal-to-noise ratio
#
# Robustness experiments (chapter 07) sweep the SNR, so it must be exact. With powers P measured as the mean
# square of each row (the last dimension), SNR in decibels is 10·log10(P_signal / P_noise). Scale `noise` so that
# each row of the result `signal + scaled noise` has exactly `snr_db`. Signals are (..., T); do not change
# `signal` in place.


# %%
def add_noise(signal, noise, snr_db):
    """(..., T) signal and noise, a number snr_db -> (..., T) signal + noise at that SNR, row by row."""
    # BEGIN SOLUTION
    p_signal = signal.pow(2).mean(dim=-1, keepdim=True)
    p_noise = noise.pow(2).mean(dim=-1, keepdim=True)
    scale = torch.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return signal + scale * noise
    # END SOLUTION


# %%
check("00.add_noise", add_noise)

# %% [markdown]
# ## 2. Padding a batch of token ids
#
# `rows` is a list of token-id lists, each `<sot> … <eot>`. Build a (B, context_length) tensor of ids that a model
# can embed: pad short rows with `PAD_ID` at the end; cut long rows to `context_length` tokens **keeping `<eot>` as
# the last one** (the text encoder reads its summary there — lose it and the row has no summary).


# %%
def pad_batch(rows, context_length):
    """list of B lists of ids -> (B, context_length) torch.long."""
    # BEGIN SOLUTION
    ids = torch.full((len(rows), context_length), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row) > context_length:
            row = row[: context_length - 1] + [EOT_ID]
        ids[i, : len(row)] = torch.tensor(row)
    return ids
    # END SOLUTION


# %%
check("00.pad_batch", pad_batch)

# %% [markdown]
# ## 3. The mel scale
#
# Log-mel spectrograms space their frequency bands evenly on the mel scale, which follows how we hear pitch: the
# HTK formula is m = 2595 · log10(1 + f / 700). Make it work for a float and, element-wise, for a tensor.


# %%
def hz_to_mel(f):
    """Frequency in Hz (float or tensor) -> mel (same type)."""
    # BEGIN SOLUTION
    if isinstance(f, torch.Tensor):
        return 2595 * torch.log10(1 + f / 700)
    return 2595 * torch.log10(torch.tensor(1 + f / 700)).item()
    # END SOLUTION


# %%
check("00.hz_to_mel", hz_to_mel)


# %% [markdown]
# ## 4. Check yourself: decibels
#
# Robustness experiments sweep the SNR from clean speech down to below 0 dB. At an SNR of −5 dB, how many times
# the power of the signal does the noise have? Answer with a number (two decimals are enough).

# %%
noise_power_ratio = 3.16  # SOLUTION

# %%
check("00.quiz_snr", noise_power_ratio)
