"""Speed of mmcourse's CLIP against open_clip's at an equal config, as ratios (ours / theirs).

    python benchmarks/bench_clip.py [--batch 128] [--reps 7] [--device cpu]

1. the course's tiny CLIP (width 64, 2 + 2 layers, 4 heads, 32x32 images): forward + backward of the
   contrastive loss at `--batch`, patchify on both sides (open_clip has no conv stem; ours with it shown too);
2. ViT-B/32 (random weights, QuickGELU): image and text forward at batch 8, no grad.
A ratio of 1.00 means as fast; above 1 means ours is slower. Medians of `reps` interleaved runs after warm-up.
"""

from __future__ import annotations

import argparse

import open_clip
import torch
from open_clip.loss import ClipLoss
from timing import median_times

from mmcourse.models.clip import CLIP, CLIPConfig
from mmcourse.models.clip_port import from_openai_state_dict

VOCAB, CONTEXT = 64, 20  # open_clip's causal mask is fixed at context_length: feed exactly that many tokens


def report(title: str, times: dict[str, float]) -> None:
    ours, theirs = times["ours"], times["open_clip"]
    extra = "".join(f", {k} {1e3 * v:.1f} ms" for k, v in times.items() if k not in ("ours", "open_clip"))
    print(f"{title:<36} ours {1e3 * ours:8.1f} ms  open_clip {1e3 * theirs:8.1f} ms  "
          f"ratio {ours / theirs:5.2f}{extra}")


def tiny(batch: int, reps: int, device: torch.device) -> None:
    cfg = CLIPConfig.tiny(vocab_size=VOCAB, eot_id=VOCAB - 1, context_length=CONTEXT, conv_stem=False)
    ours = CLIP(cfg).to(device)
    stem = CLIP(CLIPConfig.tiny(vocab_size=VOCAB, eot_id=VOCAB - 1, context_length=CONTEXT)).to(device)
    theirs = open_clip.CLIP(
        embed_dim=cfg.embed_dim,
        vision_cfg=dict(image_size=32, patch_size=4, width=64, layers=2, head_width=16),
        text_cfg=dict(context_length=CONTEXT, vocab_size=VOCAB, width=64, heads=4, layers=2),
    ).to(device)
    images = torch.randn(batch, 3, 32, 32, device=device)
    ids = torch.randint(0, VOCAB - 1, (batch, CONTEXT), device=device)
    ids[:, -1] = VOCAB - 1
    clip_loss = ClipLoss()

    def theirs_loss():
        x, y = theirs.encode_image(images, normalize=True), theirs.encode_text(ids, normalize=True)
        return clip_loss(x, y, theirs.logit_scale.exp())

    times = median_times({"ours": lambda: ours.contrastive_loss(images, ids).backward(),
                          "open_clip": lambda: theirs_loss().backward(),
                          "ours with conv stem": lambda: stem.contrastive_loss(images, ids).backward()},
                         reps, device=device)
    report(f"tiny CLIP fwd+bwd, batch {batch}", times)


@torch.no_grad()
def vit_b_32(reps: int, device: torch.device) -> None:
    theirs = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval().to(device)
    ours = from_openai_state_dict(theirs.state_dict()).to(device)
    images = torch.randn(8, 3, 224, 224, device=device)
    ids = open_clip.get_tokenizer("ViT-B-32")(["a photo of a red circle left of a blue square"] * 8)
    ids = ids.to(device)
    image_fns = {"ours": lambda: ours.encode_image(images), "open_clip": lambda: theirs.encode_image(images)}
    report("ViT-B/32 image forward, batch 8", median_times(image_fns, reps, device=device))
    text_fns = {"ours": lambda: ours.encode_text(ids), "open_clip": lambda: theirs.encode_text(ids)}
    report("ViT-B/32 text forward, batch 8", median_times(text_fns, reps, device=device))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, open_clip {open_clip.__version__}, {torch.get_num_threads()} threads, "
          f"device {device}")
    tiny(args.batch, args.reps, device)
    vit_b_32(args.reps, device)


if __name__ == "__main__":
    main()
