# %% [markdown]
# # 11 · Scaling contrastive training: one loss over many processes, and why the batch size matters
#
# CLIP was trained with a batch of 32 768 pairs, spread over hundreds of GPUs. The batch is not just a unit of
# work there: in a contrastive loss **the batch is the set of negatives** — every caption in it is a wrong answer
# for every other image. So the loss must see the *global* batch, although each process holds only its own share.
# This chapter runs that loss on real `torch.distributed` processes (two CPU processes here, the same code on many
# GPUs), proves it computes exactly what one process would, shows the mistake that silently breaks it, and measures
# what the global batch size does to what a model learns.
#
# **You will be able to**
# - gather features across processes with gradients, and compute CLIP's and SigLIP's losses globally or locally
#   (local rows against global columns, labels offset by rank × local batch);
# - check that the loss and every gradient from 2 processes equal one process's on the same global batch, and
#   measure the gradient error of a gather without gradients;
# - shard data so that no two ranks see the same example; launch with `torchrun`, on one machine or many;
# - read a batch-size curve: more negatives help, until too few steps remain.
#
# **Time**: about a minute on a 2-core laptop CPU (one process group and four short trainings), similar on a GPU.
# **Prerequisites**: chapter 02 (CLIP's loss and its zero-shot evaluation), chapter 03 (Recall@K).

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
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display

from mmcourse import zoo
from mmcourse.distributed import check_all, launch
from mmcourse.recipes import scaling_tiny as S
from mmcourse.results import record
from mmcourse.utils import get_device, seed_everything
from mmcourse.viz import plot_loss_split

seed_everything(0)
print("device:", get_device(), "| the process groups here use gloo on the CPU")
lecture_start = time.perf_counter()

# %% [markdown]
# ## 1. The batch is the set of negatives
#
# For a batch of N pairs CLIP's loss is a softmax over N captions per image (and N images per caption): the
# right caption must beat N − 1 wrong ones. A model that knows nothing scores log N; the more negatives, the
# harder the task and the more each step teaches. Chapter 02's trained CLIP, asked to find each test image's
# caption among N candidates:

# %%
clip = zoo.load("clip-tiny")
data = S.lit_data(clip)
with torch.no_grad():
    texts = F.normalize(torch.cat([clip.encode_text(ids) for ids in data.test_ids.split(500)]), dim=-1)
for N in (8, 64, 512):
    sim = data.test_embeddings[:N] @ texts[:N].T
    right = sim.argmax(1).eq(torch.arange(N)).float().mean().item()
    print(f"N = {N:>3}: the right caption ranks first for {right:.1%} of the images (chance {1 / N:.1%}); "
          f"a know-nothing model's loss log N = {math.log(N):.2f}")

# %% [markdown]
# ## 2. One loss, many processes
#
# Each of W processes (*ranks*) holds a local batch of b pairs: the global batch is N = W·b. To score every image
# against every caption, each rank **gathers** the features of all ranks (`all_gather`). Then two ways to compute
# the loss:
# - **global**: every rank computes the whole N × N matrix (the same numbers on every rank);
# - **local** (open_clip's `local_loss=True`): rank r computes only its b rows against all N columns — W times
#   less memory. Its positives are no longer on the diagonal of its block: image i of rank r matches caption
#   r·b + i, so the labels are `arange(b) + rank * b`.

# %%
display(plot_loss_split(local_batch=4, world_size=2))

# %% [markdown]
# The gather needs care. The plain `torch.distributed.all_gather` copies tensors and carries **no gradient**: the
# loss of rank 0 uses rank 1's features, but rank 1's encoder never hears about it. `mmcourse.losses.distributed`
# gathers with `AllGather`, an autograd function whose backward sums every rank's gradient for each gathered row
# and hands each rank the sum for its own rows (open_clip's `gather_with_grad=True`). Its `gather_with_grad=False`
# does what open_clip does by default: the plain gather, with this rank's own features put back in their slot so
# that at least they keep a gradient.
#
# ## 3. The headline check: two processes equal one
#
# `launch` starts 2 fresh Python processes (gloo backend, a free port), joins them in a process group and runs
# `check_all` in each. There every rank builds the same tiny CLIP and the same global batch of 16 pairs, computes
# the loss on its own 8 pairs, back-propagates, and averages the gradients over the ranks (what
# `DistributedDataParallel` does). One process computes the loss on all 16 and back-propagates too. The table
# compares loss and every gradient entry of every parameter:

# %%
start = time.perf_counter()
ranks = launch(check_all, world_size=2)
launch_seconds = time.perf_counter() - start
results = ranks[0]
print(f"2 processes, {launch_seconds:.1f} s including their start-up\n")
print(f"{'loss':>7} | {'global / local':>14} | {'gather':>16} | {'loss diff':>9} | {'largest gradient diff':>21}"
      f" | {'largest gradient':>16}")
for (loss, local, grad), r in ((k, v) for k, v in results.items() if isinstance(k, tuple)):
    print(f"{loss:>7} | {'local' if local else 'global':>14} | {'with gradient' if grad else 'without gradient':>16}"
          f" | {r['loss_diff']:>9.1e} | {r['grad_diff']:>21.1e} | {r['grad_max']:>16.2f}")
exact = max(r["grad_diff"] for k, r in results.items() if isinstance(k, tuple) and k[2])
wrong = [r["grad_diff"] / r["grad_max"] for k, r in results.items() if isinstance(k, tuple) and not k[2]]

# %%
display(record("11", "largest gradient difference, 2 processes vs 1 (CLIP and SigLIP, global and local loss)",
               exact, 1e-5, higher_is_better=False, seconds=launch_seconds))

# %% [markdown]
# With gradients through the gather, both losses, global and local, give the single-process loss and gradients to
# float rounding. Without them the loss is still right — it is computed from the same numbers — but the gradients
# are wrong (the range of the errors is printed below, relative to the largest gradient). Nothing crashes
# and the loss curve looks normal: this is the kind of bug that only a check like this one finds. (With the global
# loss, the missing part is a factor: each rank's encoder gets only its own rank's share, 1/W of the gradient. With
# the local loss, the missing part is every other rank's rows, and the direction changes too; it is smallest for
# the local SigLIP loss, whose many easy negatives add little gradient.)
#
# The check runs the model's BatchNorm layers in eval mode: in training mode each rank would normalise with its own
# batch statistics, and the forward pass itself would differ from one process's (`SyncBatchNorm` is the cure).

# %%
print(f"without gradients through the gather the largest gradient error is {min(wrong):.2%} to {max(wrong):.0%} "
      "of the largest gradient")

# %% [markdown]
# ## 4. Sharded data: no two ranks see the same example
#
# Each rank must read its own part of the data. `mmcourse.distributed.shard` uses PyTorch's `DistributedSampler`
# (shuffled by seed and epoch, the tail dropped so that every rank gets as many examples) and cuts its part into
# batches. From the two processes above, 50 examples in batches of 4:

# %%
rank0, rank1 = ({i for batch in r["shards"] for i in batch} for r in ranks)
print(f"rank 0: {len(rank0)} examples in {len(ranks[0]['shards'])} batches, first {ranks[0]['shards'][0]}; "
      f"rank 1: {len(rank1)} examples, first {ranks[1]['shards'][0]}")
print(f"examples on both ranks: {len(rank0 & rank1)}; examples on neither (the dropped tail): "
      f"{50 - len(rank0 | rank1)}")
display(record("11", "examples seen by both ranks in one epoch (sharding overlap)", len(rank0 & rank1), 0,
               higher_is_better=False))

# %% [markdown]
# ## 5. Memory: what the local loss saves
#
# The logits are the loss's big tensor: N × N per rank for the global loss, b × N for the local one. Measured from
# the tensors each loss keeps for its backward on one rank of the two (b = 256 pairs per rank, features of 64
# numbers), and modelled beyond two ranks by how the logits grow: with N² for the global loss, with b·N for the
# local one.

# %%
memory = results["memory"]
print(f"kept for backward on one of 2 ranks: global loss {memory[False] / 2**20:.1f} MiB, "
      f"local loss {memory[True] / 2**20:.1f} MiB")
b, world_sizes = 256, [2, 4, 8, 16, 32, 64]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.plot(world_sizes, [memory[False] / 2**20 * (W / 2) ** 2 for W in world_sizes], "o-",
        label="global loss: grows as N² (model)")
ax.plot(world_sizes, [memory[True] / 2**20 * (W / 2) for W in world_sizes], "s-",
        label="local loss: grows as b·N (model)")
ax.plot([2, 2], [memory[False] / 2**20, memory[True] / 2**20], "k*", ms=12, label="measured at 2 ranks", zorder=3)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(world_sizes, [str(W) for W in world_sizes])
ax.set_xlabel("world size W (b = 256 pairs per rank)")
ax.set_ylabel("MiB per rank")
ax.legend(fontsize=8)
ax.set_title("memory the loss keeps for backward, per rank", fontsize=10)
fig.tight_layout()
display(fig)
plt.close(fig)

# %% [markdown]
# The global loss grows with the square of the world size on every rank; the local loss grows linearly. At large
# scale even b × N does not fit, and two tricks go further: **gradient caching** (compute the embeddings without
# keeping activations, compute the loss and the embeddings' gradients, then re-run each sub-batch's forward and
# backward), and **chunked SigLIP** (its sigmoid loss has no softmax over the batch, so ranks can pass the text
# features around a ring and score one b × b block at a time).

# %% [markdown]
# ## 6. What the global batch size does
#
# Since two processes compute exactly what one would, one process can stand in for any global batch here. The
# experiment: chapter 02's CLIP image tower stays frozen and a fresh text tower learns to match it (LiT,
# "locked-image tuning") — every run sees the same number of (image, caption) pairs, in batches of B. A larger B
# gives each caption more negatives per step, but fewer steps. Measured: zero-shot accuracy on the 24 classes and
# text → image Recall@1 among 1 000 test images of one to three shapes (which needs the binding of colours to
# shapes).

# %%
batch_sizes = [16, 64, 256, 1024]
curve = {}
for B in batch_sizes:
    text, history = S.train(data, B, progress=False)
    curve[B] = S.evaluate(data, text) | {"steps": len(history.loss), "seconds": history.seconds}
print(f"every run sees {S.EXAMPLES} pairs")
print(f"{'batch':>6} | {'steps':>5} | {'zero-shot seen':>14} | {'zero-shot held-out':>18} | {'R@1':>5} | {'seconds':>7}")
for B, r in curve.items():
    print(f"{B:>6} | {r['steps']:>5} | {r['seen']:>14.1%} | {r['held-out']:>18.1%} | {r['R@1']:>5.1%} | "
          f"{r['seconds']:>7.1f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.2))
for key, label in [("seen", "zero-shot, seen pairs"), ("held-out", "zero-shot, held-out pairs"),
                   ("R@1", "text → image R@1 (1 000 images)")]:
    ax.plot(batch_sizes, [curve[B][key] for B in batch_sizes], "o-", label=label)
ax.set_xscale("log", base=2)
ax.set_xticks(batch_sizes, [str(B) for B in batch_sizes])
ax.set_xlabel(f"global batch size (every run sees {S.EXAMPLES} pairs)")
ax.set_ylabel("accuracy")
ax.set_ylim(0, 1.02)
ax.legend(fontsize=8, loc="lower left")
ax.set_title("a fresh text tower against CLIP's frozen image tower", fontsize=10)
fig.tight_layout()
display(fig)
plt.close(fig)

# %% [markdown]
# Zero-shot over 24 classes is easy for this frozen image tower: it saturates early and only falls at the largest
# batch, which leaves too few steps. Retrieval among 1 000 multi-object images is the harder test, and it shows the
# trade-off: from the smallest batch up, more negatives per step help; past the middle, the shrinking number of
# steps costs more than the extra negatives give. In real training the comparison is different in one way that
# matters: adding ranks raises the global batch **without** reducing the steps you can afford — every rank brings
# its own compute — which is why large contrastive runs grow the batch with the number of GPUs.

# %% [markdown]
# ## 7. Running it yourself: `torchrun`
#
# In a notebook, `launch` spawns the processes. From a shell, `torchrun` does it, and the same module runs on one
# machine or many. The gradient check of section 3 as a command:

# %%
print("one machine, 2 processes:   torchrun --nproc_per_node 2 -m mmcourse.distributed")
print("2 machines x 4 GPUs each:   torchrun --nnodes 2 --node_rank <0 or 1> --master_addr <host of rank 0> "
      "--master_port 29500 --nproc_per_node 4 -m mmcourse.distributed")

# %% [markdown]
# `torchrun` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process it starts;
# `init_process_group` reads them. On GPUs the backend is NCCL (each process pins one GPU by its local rank); on
# CPUs gloo — the loss code is the same.
#
# ## Summary
#
# - In a contrastive loss the batch is the set of negatives, so the loss must see the **global** batch: gather the
#   features of every rank, **with gradients**, and either score everything (global) or your rows against
#   everything (local, labels offset by rank × local batch).
# - Checked: two processes give one process's loss and gradients to float rounding; a gather without gradients
#   leaves the loss right and the gradients wrong, silently.
# - Shard the data so that ranks never share an example; the local loss trades nothing in exactness for memory
#   linear in the world size instead of quadratic.
# - At a fixed number of examples, a bigger batch gives more negatives but fewer steps: the curve peaks in the
#   middle. With more ranks, the batch grows without costing steps.
#
# The exercises build the local loss, fix a gather, choose a batch size for a retrieval bar and ask what the local
# loss saves.

# %%
print(f"lecture ran in {time.perf_counter() - lecture_start:.0f} s")
