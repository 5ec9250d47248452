# %% [markdown]
# # 12 · Frontiers and review: chain-of-thought, tools, and what you can now explain
#
# Chapter 05's assistant answers questions about scenes of up to three shapes. Ask it to count the shapes of a
# busier scene and it falters. Two ideas from the research frontier change *how* a model answers instead of how big
# it is: **chain-of-thought** (write the evidence down first, then answer from it) and **tool use** (emit a call to a
# program that does the part the model is bad at, then answer from its result). This chapter teaches the assistant
# both, measures them against the direct answer on the same questions, and shows where each one fails. It ends with
# a graded self-quiz on the study guide's interview questions and the study checklist mapped to the chapters.
#
# **You will be able to**
# - fine-tune one model to answer in three ways, chosen by its system prompt, and compare them fairly;
# - train a tool call without training the model to guess the tool's result (no loss on the result's tokens);
# - write a tool loop that parses calls, runs them, and always stops, saying why when a call fails;
# - tell when chain-of-thought helps and when it only writes its mistakes down first.
#
# **Time**: about a minute on a 2-core laptop CPU with chapter 05's assistant cached (a fine-tuning of under a minute
# and three evaluations), less on a GPU.
# **Prerequisites**: chapter 05 (LLaVA: splicing, label masking, generation); the review parts touch every chapter.

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
import textwrap
import time

import matplotlib.pyplot as plt
from IPython.display import display

from mmcourse import zoo
from mmcourse.data.chat import IGNORE_INDEX
from mmcourse.grading.form import quiz_form
from mmcourse.recipes import llava_tiny
from mmcourse.recipes import reasoning_tiny as R
from mmcourse.results import record
from mmcourse.utils import get_device, python_rng, seed_everything
from mmcourse.viz import show_images

seed_everything(0)
device = get_device()
print("device:", device)
lecture_start = time.perf_counter()

# %% [markdown]
# ## 1. Counting in busier scenes
#
# The test scenes hold 3 to 5 small shapes; each comes with one counting question: how many shapes, how many of one
# colour, or how many of one shape. Chapter 05's assistant (trained there in its two stages; the zoo keeps it) saw
# at most three shapes per image. Here it is, as it is, on these questions:

# %%
base = zoo.load("llava-tiny")
test = R.count_set(base)  # 300 new scenes of the training colour-shape pairs, one question each
display(show_images(test.images[:6], [f"{i}: {q}" for i, q in enumerate(test.questions[:6])], ncols=6, size=1.9))
as_is = llava_tiny.answer(base, test.questions, test.features)
as_is_right = sum(a.strip() == str(t) for a, t in zip(as_is, test.truths)) / len(test)
print(f"chapter 05's assistant, as it is: {as_is_right:.3f} of the counts right")
print("its answers to the six above:", as_is[:6], "| truths:", test.truths[:6])

# %% [markdown]
# It has never seen four or five shapes, and "4" and "5" are not even words of its vocabulary. Before comparing
# ways of answering, every way gets the same chance: the same fine-tuning data, the same steps.
#
# ## 2. Three ways to answer, one model
#
# The assistant is fine-tuned on counting conversations about new scenes at every step. Each conversation answers
# in one of three ways, and its **system prompt** says which, so one model learns all three and the comparison is
# between answers of the same weights:
#
# - **direct**: the number;
# - **chain-of-thought**: the objects it sees, left to right, then "so" and the number: the evidence is written
#   before the answer, and the answer reads it;
# - **tool**: a call `count(colour=…, shape=…)`; the loop runs it and appends the result, the model then answers.
#
# The tool reads the scene the image was drawn from: a perfect detector. The result's tokens are **read, not
# written**: their labels are the ignore index, so the model never learns to guess a count, only to ask for one.

# %%
tok = R.tokenizer()
rng = python_rng(0, "lecture-12")
objects = test.objects[0]
for strategy in R.STRATEGIES:
    ids, labels = R.conversation(objects, rng, strategy, tok)
    said = " ".join(tok.itos[i] if i >= 0 else "<image>" for i in ids[ids.index(tok.stoi["<assistant>"]) + 1:])
    learned = " ".join(tok.itos[i] for i in labels if i != IGNORE_INDEX)
    print(f"{strategy:>6} | system: {R.SYSTEMS[strategy]!r}\n       | reply:   {said}\n       | learned: {learned}")

# %% [markdown]
# In the tool reply, "= n ." is missing from what the model learns: the tool wrote it. The new words ("4", "5",
# "count", "(", "=", …) get new rows in the embedding, started at the mean of the old rows.
#
# Fine-tuning: the projector and the language model, on a new batch of scenes at every step.

# %%
model = R.build(base).to(device)
history = R.train(model, device=device)
print(f"{R.STEPS} steps in {history.seconds:.0f} s, final loss {history.loss[-1]:.3f}")

# %% [markdown]
# ## 3. Direct, chain-of-thought, tool: the same questions

# %%
replies, seconds, scores = {}, {}, {}
for strategy in R.STRATEGIES:
    start = time.perf_counter()
    replies[strategy] = R.answer(model, test, strategy)
    seconds[strategy] = time.perf_counter() - start
    scores[strategy] = R.accuracy(replies[strategy], test)
counts = sorted(scores["direct"]["by objects"])
print(f"{'':>8} {'all':>6} " + " ".join(f"{k} shapes".rjust(9) for k in counts) + "   tokens per answer   seconds")
for strategy, s in scores.items():
    print(f"{strategy:>8} {s['all']:6.3f} " + " ".join(f"{s['by objects'][k]:9.3f}" for k in counts)
          + f"   {s['tokens']:17.1f}   {seconds[strategy]:7.1f}")

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
width = 0.26
for j, strategy in enumerate(R.STRATEGIES):
    values = [scores[strategy]["by objects"][k] for k in counts]
    ax.bar([k + (j - 1) * width for k in counts], values, width, label=strategy)
ax.axhline(0.9, color="k", ls="--", lw=1, label="bar 0.9")
ax.set_xticks(counts, [f"{k} shapes" for k in counts])
ax.set_ylabel("share of counts right")
ax.set_ylim(0, 1.25)
ax.legend(loc="upper center", ncol=4, fontsize=8)
ax.set_title("the same fine-tuned model, three ways of answering")
plt.show()

# %%
best = max(("cot", "tool"), key=lambda s: scores[s]["all"])
print(f"direct answer: {scores['direct']['all']:.3f}; best of chain-of-thought and tool ({best}): "
      f"{scores[best]['all']:.3f}")
display(record("12", "counting accuracy, 3-5 shapes, best of chain-of-thought and tool", scores[best]["all"], 0.9,
               seconds=history.seconds, device=str(device)))

# %% [markdown]
# The tool answers every count of this test right, in scenes of every size: the model's part is only to read the question and write
# the call, and the count itself is exact. Chain-of-thought costs the most tokens and is barely better than the
# direct answer: both depend on what the model sees, and listing what it sees does not make it see better.
#
# Replies to the first questions, each way:

# %%
for i in range(4):
    print(f"{i}: {test.questions[i]} (truth {test.truths[i]})")
    for strategy in R.STRATEGIES:
        print(f"   {strategy:>6}: {replies[strategy][i].text}")

# %% [markdown]
# ## 4. Where chain-of-thought hurts
#
# A chain-of-thought answer is built on its list. When the list is wrong, is the answer still right for the list
# it wrote, i.e. the reasoning sound and the seeing wrong? Each wrong answer, sorted by that:

# %%
def listed(text: str) -> list[dict]:
    """The objects a chain-of-thought reply lists before "so"."""
    items = [w.split() for w in text.split(". so")[0].split(",")]
    return [{"colour": c, "shape": s} for c, s in (w for w in items if len(w) == 2)]


def count_of(objects: list[dict], call: str) -> int:
    return R.count(objects, **R.parse_call(call)[1])


cot = replies["cot"]
wrong = [i for i, r in enumerate(cot) if r.answer != str(test.truths[i])]
list_wrong = [i for i in wrong if sorted((o["colour"], o["shape"]) for o in listed(cot[i].text))
              != sorted((o["colour"], o["shape"]) for o in test.objects[i])]
carried = [i for i in list_wrong if cot[i].answer == str(count_of(listed(cot[i].text), test.calls[i]))]
lists_right = sum(sorted((o["colour"], o["shape"]) for o in listed(r.text))
                  == sorted((o["colour"], o["shape"]) for o in objs) for r, objs in zip(cot, test.objects))
print(f"lists exactly right: {lists_right} of {len(test)}")
print(f"wrong answers: {len(wrong)}; of them with a wrong list: {len(list_wrong)}; "
      f"answer right for its own wrong list: {len(carried)}")
for i in carried[:3]:
    print(f"  {test.questions[i]} truth {test.truths[i]} | scene: {R.listing(test.objects[i])} | said: {cot[i].text}")

# %% [markdown]
# About half of the wrong chain-of-thought answers come with a wrong list, and some of those are right *for the
# list they wrote*: the reasoning step carried the seeing error into the answer. The others listed the scene right
# and still counted wrong: the counting step is a second place to fail. Writing the evidence down makes an error
# *visible* (a reader can spot the extra circle), which is worth a lot, but it does not remove it. The tool moves
# the seeing and the counting to a program that makes neither error.
#
# ## 5. The answer is only as good as the tool
#
# The tool here is perfect. Give the same model a tool that misses each object one time in five, as a weak detector
# would, and ask again: the model calls it just as well, and its answers inherit the tool's mistakes.

# %%
def weak_tools(objects: list[dict], p_miss: float = 0.2, seed: int = 0) -> dict:
    gen = python_rng(seed, R.listing(objects))
    seen = [o for o in objects if gen.random() >= p_miss]
    return {"count": lambda **args: R.count(seen, **args)}


weak_replies = R.answer(model, test, "tool", tools=weak_tools)
weak = R.accuracy(weak_replies, test)
print(f"tool answers with the perfect tool: {scores['tool']['all']:.3f}; with a tool that misses one object in "
      f"five: {weak['all']:.3f}")

# %% [markdown]
# Where each way fails: the first question the direct answer gets wrong and chain-of-thought right, a
# chain-of-thought answer built on a wrong list, and a weak tool's miss.

# %%
def right(reply: R.Reply, i: int) -> bool:
    return reply.answer == str(test.truths[i])


examples = {  # index 0 stands in where a way never fails on this test set
    "the direct answer fails": next((i for i in range(len(test))
                                     if not right(replies["direct"][i], i) and right(replies["cot"][i], i)), 0),
    "chain-of-thought fails": (carried or wrong or [0])[0],
    "the weak tool fails": next((i for i in range(len(test)) if not right(weak_replies[i], i)), 0),
}
fig, axes = plt.subplots(1, 3, figsize=(12, 5))
for ax, (title, i) in zip(axes, examples.items()):
    ax.imshow(test.images[i].permute(1, 2, 0).clamp(0, 1), interpolation="nearest")
    ax.set_title(f"{title}\n{test.questions[i]} (truth {test.truths[i]})", fontsize=9)
    ax.axis("off")
    said = [f"direct: {replies['direct'][i].text}", f"chain-of-thought: {replies['cot'][i].text}",
            f"weak tool: {weak_replies[i].text}"]
    ax.text(0, -0.04, "\n".join(textwrap.fill(line, 46, subsequent_indent="  ") for line in said),
            transform=ax.transAxes, va="top", fontsize=8, family="monospace")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. A tool loop must stop
#
# A model can write a call that cannot run: a typo, an unknown tool, an argument the tool refuses. A loop that
# answers such a call by asking the model again, and again, never ends when the model repeats itself. A snippet
# you will meet in tutorials goes further wrong: it scores every tool from *every position of every sample in the
# batch*, takes one `max` over all of them against a threshold it never defines, and runs one tool for the whole
# batch. The course's loop (`R.answer_with_tools`) handles one question, stops after `MAX_CALLS` calls, and ends a
# call that cannot run with an answer that says why:

# %%
def stubborn(so_far: str) -> str:
    """A model that always writes the same malformed call."""
    return "count(colour)"


def eager(so_far: str) -> str:
    """A model that calls the tool again after every result."""
    return "count(shape=circle)"


tools = {"count": lambda **args: R.count(test.objects[0], **args)}
for step in (stubborn, eager):
    print(f"{step.__name__:>9}:", R.answer_with_tools(step, tools))

# %% [markdown]
# ## 7. Check yourself: the interview questions
#
# The study guide's interview questions, each with a short answer that points to where the course measured it.
#
# - **How do you align representations from different modalities?** Contrastively: matched pairs pulled together,
#   the batch's other pairs pushed apart, into one shared space (chapter 02's CLIP, with zero-shot accuracy and
#   retrieval as the measurements; chapter 11 scales the same loss over processes). Cross-modal attention aligns
#   tokens instead of whole embeddings (chapter 04's image-grounded encoder, chapter 09's cross-attention fusion);
#   aligning every modality to images gives alignments never trained for (chapter 07: audio to text).
# - **What are the challenges in multimodal fusion?** Imbalance (chapter 10: one modality learned first, the other
#   starved, measured by linear probes), alignment in time (chapter 07: audio frames and video frames), missing
#   modalities (chapters 07 and 09), and interactions that only a model seeing both can learn (chapter 09).
# - **How would you handle missing modalities at inference?** Train for them: modality dropout zeroes one whole
#   stream for a share of the examples (chapter 07's camera-off error rate, chapter 09's table with each modality
#   removed); a gate that weighs the streams per example (chapter 07's gated fusion) falls back on the one that is
#   there.
# - **Early, late or intermediate fusion?** Late fusion is simple and robust to a missing modality but cannot learn
#   interactions; early fusion mixes everything from the start; intermediate fusion (cross-attention, multimodal
#   transformers) mixes learned features and wins on the interaction task of chapter 09, at more compute.
#
# Answer the questions below; each is graded as soon as you choose, with its explanation once right.

# %%
quiz_form(["12.quiz_align", "12.quiz_fusion", "12.quiz_missing", "12.quiz_late_fusion", "12.quiz_tool_loss",
           "12.quiz_cot_error"])

# %% [markdown]
# ## 8. The study checklist
#
# The study guide's checklist, and where the course lets you tick each item: the lecture that builds it and the
# exercises that check it (the exercise notebooks are in `exercises/`).
#
# | the checklist item | lectures | exercises |
# |---|---|---|
# | CLIP's architecture and contrastive learning | [02 CLIP](02_clip.ipynb), [11 Scaling](11_scaling.ipynb) | 02: the text tower, the symmetric loss, zero-shot; 11: the local loss, the gather |
# | vision-language variants (DALL·E 2, BLIP, LLaVA) | [04 BLIP](04_blip.ipynb), [05 LLaVA](05_llava.ipynb), [06 unCLIP](06_unclip.ipynb) | 04: hard negatives, CapFilt; 05: splicing, label masking; 06: the noising, guidance |
# | fusion techniques and their trade-offs | [09 Fusion](09_fusion.ipynb) | 09: tensor fusion, cross-attention fusion, modality dropout |
# | audio-visual models and applications | [07 Audio-visual](07_audio_visual.ipynb) | 07: CTC decoding, gated fusion, the reshape fix |
# | video-language models and tokenization | [08 Video](08_video.ipynb) | 08: the vector quantizer, masked modelling |
# | evaluation metrics for multimodal tasks | [03 Metrics](03_metrics.ipynb) | 03: Recall@K, MRR, BLEU, CIDEr-D, VQA accuracy |
# | training strategies | [10 Training strategies](10_training_strategies.ipynb) | 10: gradient modulation, balanced sampling |
# | missing modalities | [07](07_audio_visual.ipynb), [09](09_fusion.ipynb) | 07: the dropout rate; 09: modality dropout |
# | attention and transformers, underneath all of it | [01 Attention and ViT](01_attention_vit.ipynb) | 01: attention, patch embedding |
# | reasoning and tools | this chapter | 12: the parser and executor, the loop, the strategy |
#
# ## Summary
#
# - Fine-tuned the same way, the three ways of answering differ: the tool answered every count right, the
#   direct answer and chain-of-thought were not (section 3's table), and chain-of-thought cost the most tokens.
# - Chain-of-thought writes its evidence down; when the model misreads the scene, the reasoning carries the wrong
#   list into the answer (section 4). It makes errors visible, not absent.
# - A tool moves the hard part to a program; the answer is then only as good as the tool (section 5). Its result
#   is read, never learned; the loop around it must stop and say why it stopped (section 6).
#
# The exercises build the call parser and executor, fix a loop that never stops, choose a strategy for a counting
# bar within a token budget, and ask the interview questions.

# %%
print(f"lecture ran in {time.perf_counter() - lecture_start:.0f} s")
