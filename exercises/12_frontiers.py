# %% [markdown]
# # 12 · Exercises: chain-of-thought, tools, and the interview questions
#
# A tool-call parser and its executor to build, a tool loop to fix, a strategy to choose for a counting bar, and
# the study guide's interview questions — each checked against the course's reference. Write the body of each
# function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your answer is
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
import re

from mmcourse.grading import check
from mmcourse.recipes import reasoning_tiny as R
from mmcourse.recipes.reasoning_tiny import Reply, ToolError, final_answer

# %% [markdown]
# ## 1. Parse a tool call
#
# The model writes a call as `name(key=value, ...)`; decoded from its tokens it comes with spaces,
# `count ( colour = red )`. Return `(name, {key: value})`, both as str, with no arguments for `count()`. Raise
# `ToolError` (with a message that quotes the text) when the text is not a call: no parentheses, an argument that
# is not `key=value`, an empty argument, or a key given twice.


# %%
def parse_call(text):
    """"count(colour=red, shape=circle)" -> ("count", {"colour": "red", "shape": "circle"})."""
    raise NotImplementedError("exercise: write the body of `parse_call`")


# %%
check("12.parse_call", parse_call)

# %% [markdown]
# ## 2. Run it
#
# `tools` maps a tool's name to a function of keyword arguments. Return the tool's result **as text** (the model
# reads it). Every way the call can fail must become a `ToolError` that says what went wrong, so that the loop can
# answer with it: a malformed call, an unknown tool, or a tool that raises (a bad colour, an argument it does not
# take).


# %%
def execute(text, tools):
    """-> the tool's result, as str."""
    raise NotImplementedError("exercise: write the body of `execute`")


# %%
check("12.execute", execute)

# %% [markdown]
# ## 3. Fix the tool loop
#
# `step(reply_so_far)` returns the model's continuation: up to and with a call's ")", or to the end of its reply.
# After a call the loop runs it with the course's executor (`R.execute`, which does what yours of section 2 does),
# adds the tool's result (" = result.") and asks the model to go on. The loop below works for a model that behaves,
# and never ends for one that repeats a call that cannot run, or keeps calling. Fix it: at
# most `max_calls` calls, then stop with an answer that says so; a call that cannot run (a `ToolError`) ends the
# answer at once with `"no answer: "` and what went wrong. Return `Reply(answer, text, calls, tokens)` (tokens: 0
# is fine here).


# %%
def answer_with_tools(step, tools, max_calls=2):
    """-> Reply(answer, text, calls, tokens)."""
    text, calls = "", 0
    while True:
        out = step(text)
        text = f"{text} {out}" if text else out
        if not out.rstrip().endswith(")"):
            return Reply(final_answer(text), text, calls, 0)
        # this code has a bug: find it and fix it
        calls += 1
        try:
            text += f" = {R.execute(out, tools)}."
        except ToolError:
            text += " = error."  # ask again: the model may do better this time


# %%
check("12.tool_loop", answer_with_tools)

# %% [markdown]
# ## 4. Experiment: a strategy for a counting bar
#
# `strategy_scores(strategy)` fine-tunes chapter 05's assistant for 300 steps on counting conversations in one
# strategy alone ("direct", "cot" or "tool"), then asks it the lecture's 300 test questions, and returns its
# accuracy and the tokens it generates per answer. It trains for about half a minute the first time; the result is
# kept in the model cache, so asking again is instant. Choose the strategy that answers **≥ 0.9** of the counts
# right with **at most 10 generated tokens** per answer.

# %%
from mmcourse.grading.checks.ch12 import strategy_scores  # noqa: E402

print("direct:", strategy_scores("direct"))


# %%
def my_strategy():
    """-> {"strategy": "direct", "cot" or "tool"}."""
    raise NotImplementedError("exercise: write the body of `my_strategy`")


# %%
check("12.strategy", my_strategy)

# %% [markdown]
# ## 5. Check yourself: the interview questions
#
# **Q1.** How does the course align two modalities in one embedding space, and where is it measured?
# (a) train one classifier per modality on the same labels and average their outputs · (b) contrastive learning:
# matched pairs pulled together, the other pairs of the batch pushed apart · (c) concatenate the raw inputs and
# train an autoencoder on them · (d) translate every image into a caption first, then compare captions

# %%
answer_align = ...  # your answer

# %%
check("12.quiz_align", answer_align)

# %% [markdown]
# **Q2.** Which challenge of fusion did chapter 10 measure: a fused model whose image branch learns almost nothing
# although the image holds the answer? (a) modality imbalance · (b) temporal misalignment · (c) a missing modality
# at test time · (d) different numeric ranges of the inputs

# %%
answer_fusion = ...  # your answer

# %%
check("12.quiz_fusion", answer_fusion)

# %% [markdown]
# **Q3.** A model must still answer when the camera fails at test time. What did chapters 07 and 09 show works?
# (a) nothing: a fused model needs every input · (b) fill the missing stream with random noise at test time ·
# (c) train with modality dropout: drop a whole stream for a share of the training examples · (d) train two
# separate models and never fuse

# %%
answer_missing = ...  # your answer

# %%
check("12.quiz_missing", answer_missing)

# %% [markdown]
# **Q4.** In chapter 09's task the answer depends on how the image and the sound relate (an interaction). Which
# fusion fails it? (a) late fusion (combine each modality's own prediction) · (b) cross-attention fusion · (c) tensor
# fusion (outer product of the two features) · (d) a multimodal transformer

# %%
answer_late_fusion = ...  # your answer

# %%
check("12.quiz_late_fusion", answer_late_fusion)

# %% [markdown]
# **Q5.** In a tool reply "count(shape=circle) = 2. so 2", how many of the tool's result tokens ("=", "2", ".")
# carry loss in training? Answer with a number.

# %%
answer_tool_loss = ...  # your answer

# %%
check("12.quiz_tool_loss", answer_tool_loss)

# %% [markdown]
# **Q6.** A chain-of-thought reply lists "red circle, blue square, red circle" for a scene with one red circle and
# one blue square, then answers "how many circles?" with 2. Where is the error? (a) in the counting step: it counted
# the list wrong · (b) in the list: it saw a circle twice · (c) in the question · (d) nowhere: 2 is right

# %%
answer_cot_error = ...  # your answer

# %%
check("12.quiz_cot_error", answer_cot_error)
