"""Chapter 01 exercises: attention with masks, patchify, the causal mask, attention rollout; a pre-LN block and
a batch-first bug to fix; an augmentation against the colour shortcut (experiment); three graded questions."""

from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F

from mmcourse import nn as mnn
from mmcourse.data import COLOUR_NAMES, SHAPES, render, sample_scenes
from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register, register_quiz
from mmcourse.train import fit
from mmcourse.utils import describe, seed_everything


# ---------------------------------------------------------------- 01.attention
def attention(q, k, v, mask=None):
    """Reference: softmax(q kᵀ / √d, masked where mask is False) v, and the weights."""
    return mnn.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)


def _attn_no_scale(q, k, v, mask=None):
    """forgets to divide the scores by √d"""
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def _attn_softmax_wrong_dim(q, k, v, mask=None):
    """takes the softmax over the queries (dim -2) instead of the keys"""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-2)
    return w @ v, w


def _attn_mask_inverted(q, k, v, mask=None):
    """hides the keys where the mask is True (True means *may* attend)"""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def _attn_ignores_mask(q, k, v, mask=None):
    """ignores the mask"""
    w = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)
    return w @ v, w


@register("01.attention", attention, [_attn_no_scale, _attn_softmax_wrong_dim, _attn_mask_inverted, _attn_ignores_mask])
def _test_attention(fn):
    g = torch.Generator().manual_seed(1)
    n = 0
    for device in devices():
        for B, H, Lq, Lk, d, masked in [(2, 3, 5, 7, 8, False), (1, 1, 4, 4, 16, False), (2, 2, 6, 6, 8, True),
                                        (3, 2, 4, 9, 4, True)]:
            q, k, v = (torch.randn(B, H, L, d, generator=g).to(device) for L in (Lq, Lk, Lk))
            q.requires_grad_(True)
            mask = None
            if masked:
                mask = torch.rand(B, 1, Lq, Lk, generator=g).to(device) > 0.3
                mask[..., 0] = True  # every query keeps at least one key
            case = f"q {tuple(q.shape)}, k {tuple(k.shape)}" + (", with a mask" if masked else "")
            got = fn(q, k, v, mask)
            if not (isinstance(got, tuple) and len(got) == 2):
                fail(f"{case}: return (output, weights)", "a tuple of 2 tensors", type(got).__name__)
            out, w = got
            ref_out, ref_w = attention(q, k, v, mask)
            expect_close(w, ref_w, f"{case}: weights", "softmax over the keys (last dim) of q·kᵀ/√d; "
                         "mask: False means 'may not attend' → −inf before the softmax")
            expect_close(out, ref_out, f"{case}: output", "output = weights @ v")
            if out.grad_fn is None:
                fail(f"{case}: no gradient flows from the output back to q", "out.grad_fn set", None,
                     "avoid .detach(), .item() or numpy in the computation")
            n += 2
    return n


# ---------------------------------------------------------------- 01.patchify
def patchify(images, patch_size):
    """Reference: (B, C, H, W) -> (B, N, C·p·p), patches row by row, each flattened (C, p, p)."""
    return mnn.patchify(images, patch_size)


def _patchify_channels_last(images, patch_size):
    """flattens each patch as (p, p, C) instead of (C, p, p)"""
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), -1)


def _patchify_no_permute(images, patch_size):
    """reshapes without permuting: the rows of the image, not its patches"""
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)


def _patchify_column_major(images, patch_size):
    """orders the patches column by column instead of row by row"""
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(B, (H // p) * (W // p), -1)


@register("01.patchify", patchify, [_patchify_channels_last, _patchify_no_permute, _patchify_column_major])
def _test_patchify(fn):
    g = torch.Generator().manual_seed(2)
    n = 0
    for B, C, H, W, p in [(2, 3, 8, 8, 4), (1, 3, 32, 32, 8), (2, 1, 6, 12, 3), (3, 2, 4, 4, 4)]:
        images = torch.randn(B, C, H, W, generator=g)
        expect_equal(fn(images, p), patchify(images, p), f"images {(B, C, H, W)}, patch {p}",
                     "patch n is row n // (W/p), column n % (W/p); flatten each patch as (C, p, p), like conv1.weight")
        n += 1
    conv = torch.nn.Conv2d(3, 5, 4, stride=4, bias=False)
    images = torch.randn(2, 3, 8, 12, generator=g)
    want = conv(images).flatten(2).transpose(1, 2)
    expect_close(fn(images, 4) @ conv.weight.flatten(1).T, want, "patchify(x) @ conv.weight.flatten(1).T vs conv(x)",
                 "a patch embedding is a Linear layer on your patches", atol=1e-5)
    return n + 1


# ---------------------------------------------------------------- 01.causal_mask
def causal_mask(length, device=None):
    """Reference: (length, length) bool, True where query i may attend key j (j <= i)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def _causal_future(length, device=None):
    """lets each query see the future (upper triangle) instead of the past"""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu()


def _causal_strict(length, device=None):
    """hides the diagonal: a query may not attend to itself"""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril(-1)


def _causal_float(length, device=None):
    """returns a float mask of 0/1 instead of a bool one"""
    return torch.ones(length, length, device=device).tril()


def _causal_cpu_only(length, device=None):
    """creates the mask on the CPU whatever the device asked for"""
    return torch.ones(length, length, dtype=torch.bool).tril()


@register("01.causal_mask", causal_mask, [_causal_future, _causal_strict, _causal_float, _causal_cpu_only])
def _test_causal_mask(fn):
    n = 0
    for device in devices():
        for length in (1, 2, 5, 16):
            got = fn(length, device=device)
            want = causal_mask(length, device)
            if isinstance(got, torch.Tensor) and got.device.type != device.type:
                fail(f"length {length}: the mask is on the wrong device", device, got.device,
                     "create it with device=device so it lives next to the scores (a common tutorial mistake: "
                     "index tensors made on the CPU)")
            if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
                fail(f"length {length}: expected a bool mask (True = may attend)", torch.bool, got.dtype)
            expect_equal(got, want, f"length {length}", "query i may look at keys 0..i, itself included")
            n += 1
    # The check can only tell a CPU-only mask apart on an accelerator; on a CPU-only machine also ask for "meta".
    got = fn(3, device=torch.device("meta"))
    if not isinstance(got, torch.Tensor) or got.device.type != "meta":
        fail("device='meta': the mask must be created on the device you are given",
             "meta", getattr(got, "device", got), "pass device=device to torch.ones / torch.tril")
    return n + 1


# ---------------------------------------------------------------- 01.attention_rollout
def attention_rollout(attentions):
    """Reference: per-layer weights [(B, H, L, L)] -> rollout (B, L, L)."""
    return mnn.attention_rollout(attentions)


def _rollout_variant(attentions, heads="mean", identity=True, renorm=True, last_on_left=True):
    """Rollout with one step done differently: the mutants below each change exactly one thing."""
    r = None
    for attn in attentions:
        a = attn.mean(1) if heads == "mean" else attn.amax(1)
        if identity:
            a = a + torch.eye(a.shape[-1])
        if renorm:
            a = a / a.sum(-1, keepdim=True)
        r = a if r is None else (a @ r if last_on_left else r @ a)
    return r


def _rollout_no_identity(attentions):
    """forgets to add the identity (the residual path)"""
    return _rollout_variant(attentions, identity=False)


def _rollout_no_renorm(attentions):
    """does not renormalise the rows after adding the identity"""
    return _rollout_variant(attentions, renorm=False)


def _rollout_wrong_order(attentions):
    """multiplies the layers in the wrong order (first layer on the left)"""
    return _rollout_variant(attentions, last_on_left=False)


def _rollout_max_heads(attentions):
    """takes the max over heads instead of the mean"""
    return _rollout_variant(attentions, heads="max")


@register("01.attention_rollout", attention_rollout,
          [_rollout_no_identity, _rollout_no_renorm, _rollout_wrong_order, _rollout_max_heads])
def _test_rollout(fn):
    g = torch.Generator().manual_seed(3)
    n = 0
    for B, H, L, layers in [(2, 4, 5, 3), (1, 1, 3, 1), (1, 2, 7, 4)]:
        attns = [torch.randn(B, H, L, L, generator=g).softmax(-1) for _ in range(layers)]
        expect_close(fn(attns), attention_rollout(attns), f"{layers} layers of weights {(B, H, L, L)}",
                     "per layer: mean over heads, + identity, rows renormalised; then R = Â_l … Â_1 (last on the left)")
        n += 1
    return n


# ---------------------------------------------------------------- 01.pre_ln_block (fix)
def pre_ln_block(x, ln_1, attn, ln_2, mlp):
    """Reference: one pre-LN block, x + attn(ln_1(x)), then x + mlp(ln_2(x))."""
    x = x + attn(ln_1(x))
    return x + mlp(ln_2(x))


def _block_post_ln(x, ln_1, attn, ln_2, mlp):
    """normalises after each residual sum (post-LN), not the input of each sub-layer (pre-LN)"""
    x = ln_1(x + attn(x))
    return ln_2(x + mlp(x))


def _block_norm_on_stream(x, ln_1, attn, ln_2, mlp):
    """normalises the residual stream itself (x = ln(x)) instead of only the sub-layer's input"""
    x = ln_1(x)
    x = x + attn(x)
    x = ln_2(x)
    return x + mlp(x)


def _block_no_residual(x, ln_1, attn, ln_2, mlp):
    """drops the residual connections: x is replaced by the sub-layer's output instead of added to"""
    x = attn(ln_1(x))
    return mlp(ln_2(x))


@register("01.pre_ln_block", pre_ln_block, [_block_post_ln, _block_norm_on_stream, _block_no_residual])
def _test_pre_ln_block(fn):
    torch.manual_seed(4)
    n = 0
    for B, L, D, heads in [(2, 5, 16, 4), (1, 3, 8, 2)]:
        block = mnn.ResidualAttentionBlock(D, heads).eval()
        with torch.no_grad():  # LayerNorm gains and biases away from 1 and 0, so a misplaced norm shows
            for ln in (block.ln_1, block.ln_2):
                ln.weight.uniform_(0.5, 2.0)
                ln.bias.normal_(0.0, 0.5)
        x = torch.randn(B, L, D) * 3 + 1

        def attn(h, block=block):
            return block.attn(h)[0]

        want = block(x)
        got = fn(x, block.ln_1, attn, block.ln_2, block.mlp)
        expect_close(got, want, f"x {(B, L, D)}", "pre-LN: normalise the input of each sub-layer, add its output "
                     "to the un-normalised x: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))", atol=1e-4)
        n += 1
    return n


# ---------------------------------------------------------------- 01.self_attend (fix)
def self_attend(x, mha):
    """Reference: self-attention over each example's tokens, x (B, L, D), with a sequence-first layer."""
    seq_first = x.transpose(0, 1)  # (L, B, D), what nn.MultiheadAttention reads without batch_first=True
    return mha(seq_first, seq_first, seq_first, need_weights=False)[0].transpose(0, 1)


def _self_attend_batch_as_sequence(x, mha):
    """feeds (B, L, D) to a sequence-first layer: each example attends to the other examples, not its tokens"""
    return mha(x, x, x, need_weights=False)[0]


def _self_attend_no_transpose_back(x, mha):
    """transposes the input to (L, B, D) but returns the output in that layout, not (B, L, D)"""
    seq_first = x.transpose(0, 1)
    return mha(seq_first, seq_first, seq_first, need_weights=False)[0]


@register("01.self_attend", self_attend, [_self_attend_batch_as_sequence, _self_attend_no_transpose_back])
def _test_self_attend(fn):
    torch.manual_seed(5)
    n = 0
    for B, L, D in [(3, 5, 16), (2, 7, 8), (4, 4, 8)]:  # the last one is square: a wrong layout still fits
        mha = torch.nn.MultiheadAttention(D, 2).eval()  # batch_first=False, as the snippet builds it
        x = torch.randn(B, L, D)
        expect_close(fn(x, mha), self_attend(x, mha), f"x (B, L, D) = {(B, L, D)}",
                     "without batch_first=True the layer reads (L, B, D): transpose in, and transpose back out")
        x2 = x.clone()
        x2[1:] = torch.randn(B - 1, L, D)
        if not torch.allclose(fn(x2, mha)[0], fn(x, mha)[0], atol=1e-6):
            fail(f"x {(B, L, D)}: changing examples 1… changed example 0's output", "example 0 unchanged",
                 "it changed", "examples must not attend to each other")
        n += 2
    return n


# ---------------------------------------------------------------- 01.colour_shortcut (experiment)
SHORTCUT_BAR = 0.9  # shape accuracy on colour–shape pairs never seen in training
# In the experiment's training set each colour comes with one shape only: colour alone predicts the shape.
SHORTCUT_PAIRS = {"circle": ("red", "green", "purple"), "square": ("orange", "cyan", "pink"),
                  "triangle": ("yellow", "blue")}
SHORTCUT_HELD_OUT = tuple((c, s) for s in SHAPES for c in COLOUR_NAMES if c not in SHORTCUT_PAIRS[s])


def _shape_recipe(augment, seed: int = 0, steps: int = 300):
    """The experiment's recipe: a small conv-stem ViT learns the shape of single objects on training pairs only,
    each batch passed through `augment(images, generator)`. Returns the trained model (images -> 3 shape logits)."""
    train = sample_scenes(8_000, seed=100 + seed, max_objects=1, split="train", held_out=SHORTCUT_HELD_OUT)
    images, shapes = render(train, 32, seed=100 + seed), train.shape[:, 0]
    seed_everything(seed)
    model = mnn.VisionTransformer(32, 4, width=32, layers=2, heads=4, output_dim=3, conv_stem=True)

    def batches(step):
        g = torch.Generator().manual_seed(seed * 100_000 + step)
        idx = torch.randint(len(images), (64,), generator=g)
        return augment(images[idx], g), shapes[idx]

    def loss_fn(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    with contextlib.redirect_stdout(io.StringIO()):  # the check's verdict is the only output
        fit(model, loss_fn, batches, steps=steps, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.05, warmup=20,
            device="cpu", progress=False)
    return model


def shape_accuracy_on_held_out_pairs(model, seed: int = 7, n: int = 1_000) -> float:
    """Shape accuracy of `model` on `n` fresh images of the colour–shape pairs its training never showed."""
    scenes = sample_scenes(n, seed=1_000 + seed, max_objects=1, split="test", held_out=SHORTCUT_HELD_OUT)
    with torch.no_grad():
        logits = model.eval()(render(scenes, 32, seed=1_000 + seed))
    return (logits.argmax(1) == scenes.shape[:, 0]).float().mean().item()


def recolour(images, generator):
    """Reference: paint each image's object in a new random colour, keeping its anti-aliased coverage.

    The background is the corner pixel; the coverage is how far each pixel stands out from it, scaled to 1 inside
    the object; the new colour has its largest channel at 1 (every colour of the world is that bright)."""
    background = images[:, :, :1, :1]
    distance = (images - background).amax(1, keepdim=True)  # (B, 1, H, W)
    coverage = distance / distance.amax((2, 3), keepdim=True).clamp_min(1e-6)
    colour = torch.rand(len(images), 3, 1, 1, generator=generator).to(images.device)  # drawn on the CPU
    colour = colour / colour.amax(1, keepdim=True)
    return (background + coverage * (colour - background)).clamp(0, 1)


def _recolour_identity(images, generator):
    """returns the images unchanged: colour still gives the shape away"""
    return images


def _recolour_fixed_swap(images, generator):
    """swaps red and blue in every image alike: each colour still goes with the same shapes"""
    return images[:, [2, 1, 0]]


def _recolour_global_rng(images, generator):
    """draws its randomness from the global generator, not from the `generator` it is given"""
    return recolour(images, torch.Generator().manual_seed(int(torch.randint(2**31, ()))))


def _recolour_shuffle_patches(images, generator):
    """moves pixels around (shuffles 8x8 blocks) instead of changing colours: the shapes are destroyed"""
    blocks = images.unfold(2, 8, 8).unfold(3, 8, 8).flatten(2, 3)  # (B, C, 16, 8, 8)
    order = torch.randperm(16, generator=generator)
    return blocks[:, :, order].unflatten(2, (4, 4)).permute(0, 1, 2, 4, 3, 5).reshape(images.shape)


@register("01.colour_shortcut", recolour,
          [_recolour_identity, _recolour_fixed_swap, _recolour_global_rng, _recolour_shuffle_patches])
def _test_colour_shortcut(fn):
    scenes = sample_scenes(64, seed=3, max_objects=1, split="train")
    images = render(scenes, 32, seed=3)
    got = fn(images.clone(), torch.Generator().manual_seed(0))
    if not isinstance(got, torch.Tensor) or got.shape != images.shape or not got.is_floating_point():
        fail("augment(images, generator) must return float images of the same shape", describe(images), describe(got))
    if got.min() < 0 or got.max() > 1:
        fail("augmented images must stay in [0, 1]", "[0, 1]", f"[{got.min():.3g}, {got.max():.3g}]")
    again = fn(images.clone(), torch.Generator().manual_seed(0))
    if not torch.equal(got, again):
        fail("the same generator state gave two different results", "a repeatable augmentation", "another result",
             "draw every random number from `generator` (torch.randperm(3, generator=generator), …)")
    same = fn(images[:1].expand(64, -1, -1, -1).clone(), torch.Generator().manual_seed(1))
    if (same - same[:1]).abs().amax((1, 2, 3)).lt(1e-6).all():
        fail("64 copies of one image all came out alike", "a colour change drawn anew for each image",
             "the same change for every image", "a fixed change keeps each colour tied to the same shapes")
    silhouette = images.amax(1) > 0.4  # the object: every colour of the world has a channel above 0.85
    moved = ((got.amax(1) > 0.4) != silhouette).float().mean().item()
    if moved > 0.01:
        fail("the augmentation moves the objects: the pixels that stand out from the grey background changed",
             "at most 1% of pixels", f"{moved:.1%}", "change colours only; the shape is what the model must learn")
    accuracy = shape_accuracy_on_held_out_pairs(_shape_recipe(fn))
    if accuracy < SHORTCUT_BAR:
        fail("trained with your augmentation, the model still misses the shape of colour–shape pairs it never saw "
             "(1 000 new images)", f"shape accuracy ≥ {SHORTCUT_BAR:.0%}", f"{accuracy:.1%}",
             "the colour must stop predicting the shape; a permutation of the RGB channels keeps which channels are "
             "strong and which weak, and that is still a colour")
    return 5


# ---------------------------------------------------------------- quizzes
register_quiz(
    "01.quiz_tokens",
    "How many tokens does the chapter's ViT feed its first block for one 32×32 image cut into 4×4 patches?",
    65,
    "(32/4)² = 64 patch tokens plus the class token: 65, which is why every attention map is 65 × 65.",
    wrong={64: "that counts the patches only: the class token (CLS) is a token too.",
           8: "8 is the side of the patch grid; the grid has 8 × 8 patches.",
           48: "48 = 3·4·4 is the length of one flattened patch, not the number of tokens."},
)

register_quiz(
    "01.quiz_no_positions",
    "Drop the positional embedding from a ViT (conv patch embedding, CLS token, transformer, head on the CLS "
    "token). Shuffle the patches of an image. What happens to the prediction?",
    "c",
    "Without positions nothing tells the tokens apart but their content, and attention treats its keys as a set: "
    "permuting the patch tokens permutes the rows of every layer's output the same way, and the CLS token's "
    "weighted sum is unchanged. The prediction is exactly the same: the model sees a bag of patches.",
    choices={"a": "it changes a lot: the shape is spread over several patches",
             "b": "it changes a little: attention weights depend on where a key sits in the sequence",
             "c": "it stays exactly the same",
             "d": "the model raises an error: the patch order no longer matches the weights"},
    wrong={"a": "a ViT without positions cannot see the arrangement at all: what does not depend on it cannot change.",
           "b": "the softmax over the keys does not know their order: only q·k, which depends on content.",
           "d": "nothing in the weights is tied to a patch index once the positional embedding is gone."},
)

register_quiz(
    "01.quiz_post_ln",
    "In a post-LN block (x = LN(x + attn(x)); x = LN(x + mlp(x))), what does the gradient from the loss meet on "
    "its way down the residual path to the first layer that it does not meet in a pre-LN block?",
    "b",
    "Post-LN puts a LayerNorm on the residual path after every sub-layer, so the gradient to early layers passes "
    "through 2 · layers LayerNorms; pre-LN leaves the residual path an identity from input to output (the norms "
    "sit on the branches), which is why deep pre-LN stacks train without a careful warm-up.",
    choices={"a": "nothing: both layouts have the same residual path",
             "b": "a LayerNorm after every sub-layer",
             "c": "a softmax",
             "d": "the MLP's activation function"},
    wrong={"a": "compare where the LayerNorm sits: in post-LN it is applied to the sum x + f(x) itself.",
           "c": "the softmax is inside attention, on a branch, in both layouts.",
           "d": "the activation is inside the MLP, on a branch, in both layouts."},
)
