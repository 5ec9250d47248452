"""torch Datasets of the shapes world, one per kind of chapter, each with a `collate` for its DataLoader.

Everything is generated (vectorised) when the dataset is built, from an int seed; captions are re-drawn
per epoch (`set_epoch`) so that their wording varies while their meaning stays fixed.

    ds = CaptionDataset(5000, seed=0, split="train")
    loader = DataLoader(ds, batch_size=128, shuffle=True, collate_fn=ds.collate)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mmcourse.data.audio import (
    SAMPLE_RATE,
    add_noise,
    babble_noise,
    random_sentences,
    scene_sounds,
    speak,
    white_noise,
)
from mmcourse.data.text import (
    ANSWERS,
    QUESTION_TYPES,
    Tokenizer,
    annotator_answers,
    caption,
    corrupt_objects,
    make_question,
)
from mmcourse.data.video import moving_shapes, talking_mouth
from mmcourse.data.world import (
    COLOUR_NAMES,
    HELD_OUT,
    SHAPES,
    Scenes,
    allowed_pairs,
    check_names,
    render,
    sample_scenes,
    shape_twins,
)
from mmcourse.utils import check_number, check_sizes, describe, make_generator, python_rng

__all__ = ["ShapesDataset", "CaptionDataset", "VQADataset", "ObjectSoundDataset", "MovingShapesDataset",
           "AVSpeechDataset", "pad_stack"]


def _check_seed(seed) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed


def pad_stack(tensors: list[Tensor], value: float = 0) -> tuple[Tensor, Tensor]:
    """Stack tensors whose first dim differs, padding at the end: (B, L_max, ...) and lengths (B,)."""
    if not isinstance(tensors, (list, tuple)) or not tensors or \
            not all(isinstance(t, Tensor) and t.ndim >= 1 for t in tensors):
        raise TypeError(f"tensors: expected a non-empty list of tensors (L_i, ...), got {describe(tensors)}")
    check_number(value, "value")
    lengths = torch.tensor([len(t) for t in tensors])
    out = tensors[0].new_full((len(tensors), int(lengths.max()), *tensors[0].shape[1:]), value)
    for i, t in enumerate(tensors):
        out[i, :len(t)] = t
    return out, lengths


class ShapesDataset(Dataset):
    """Images of 1..max_objects shapes with their attributes (ViT, diffusion, classification).

    Item: image (3, R, R); label (class colour * 3 + shape of the first object, the target for
    single-object scenes); shape, colour, size (K,) with -1 in empty slots; boxes (K, 4) pixel boxes;
    n_objects. `scenes` holds the whole batch of scenes, `images` all images. Keywords go to
    `sample_scenes` (split, held_out, colours, shapes, sizes) and `render` (antialias, colour_jitter, noise).
    twins=True: n/2 sampled scenes, then their `shape_twins`: items i and i + n/2 differ in one object's shape.
    """

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, *, split: str = "all",
                 min_objects: int = 1, max_objects: int = 1, held_out=HELD_OUT, colours=None, shapes=None,
                 sizes=None, twins: bool = False, device=None, **render_kw):
        self.seed, self.resolution, self.twins = _check_seed(seed), resolution, twins
        self.split, self.held_out = split, held_out
        if twins and n % 2:
            raise ValueError(f"twins=True needs an even n (scenes and their twins), got {n}")
        self.scenes = sample_scenes(n // 2 if twins else n, seed, min_objects=min_objects, max_objects=max_objects,
                                    split=split, held_out=held_out, colours=colours, shapes=shapes, sizes=sizes)
        if twins:
            self.scenes = Scenes.cat([self.scenes, shape_twins(self.scenes, seed, split=split, held_out=held_out)])
        self.images = render(self.scenes, resolution, seed, device=device, **render_kw)
        self.boxes = self.scenes.boxes(resolution)
        self.labels, self.n_objects = self.scenes.label[:, 0], self.scenes.n_objects  # per-item lookups stay cheap

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> dict:
        s = self.scenes
        return {"image": self.images[i], "label": self.labels[i], "shape": s.shape[i], "colour": s.colour[i],
                "size": s.size[i], "boxes": self.boxes[i], "n_objects": self.n_objects[i], "index": i}


class CaptionDataset(ShapesDataset):
    """Image-caption pairs (CLIP, BLIP): the caption is re-worded every epoch when augment=True.

    noise_fraction: exactly this fraction of images gets a wrong ('web') caption, swapped attribute or
    unrelated (kinds in noise_kinds); item "clean" says which. references[i]: captions_per_image correct
    captions of image i (for retrieval / captioning metrics). caption_kw go to `caption` for the training
    captions (e.g. p_drop_size=0: always name sizes). collate -> images, text (B, L) ids, clean...
    """

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, *, max_objects: int = 2,
                 captions_per_image: int = 5, noise_fraction: float = 0.0, noise_kinds=("swap", "unrelated"),
                 augment: bool = True, caption_kw: dict | None = None, tokenizer: Tokenizer | None = None,
                 context_length: int | None = None, **kw):
        super().__init__(n, resolution, seed, max_objects=max_objects, **kw)
        check_number(noise_fraction, "noise_fraction", low=0, high=1)
        check_names(noise_kinds, ("swap", "unrelated"), "noise kind", "noise_kinds")
        check_number(captions_per_image, "captions_per_image", integer=True, low=1, high=1000)  # more: a typo
        if context_length is not None:
            check_number(context_length, "context_length", integer=True, low=2)
        self.augment, self.caption_kw, self.epoch = augment, dict(caption_kw or {}), 0
        self.tokenizer, self.context_length = tokenizer or Tokenizer(), context_length
        self.objects = [self.scenes.objects(i) for i in range(n)]
        noisy = torch.randperm(n, generator=make_generator(seed, "noisy"))[:round(noise_fraction * n)]
        self.clean = torch.ones(n, dtype=torch.bool)
        self.clean[noisy] = False
        rng = python_rng(seed, "captions")
        pairs = None  # wrong captions of a training split name training pairs only: held-out pairs stay unseen
        if self.split == "train":
            pairs = [(COLOUR_NAMES[c], SHAPES[s]) for c, s in allowed_pairs("train", self.held_out)]
        self.described = [objs if ok else corrupt_objects(objs, rng, rng.choice(noise_kinds), pairs)
                          for objs, ok in zip(self.objects, self.clean.tolist(), strict=True)]
        self.references = [[caption(objs, rng) for _ in range(captions_per_image)] for objs in self.objects]

    def set_epoch(self, epoch: int) -> None:
        """Choose the wording of every caption for this epoch (call it at the start of each epoch)."""
        self.epoch = epoch

    def caption(self, i: int) -> str:
        """The training caption of image i this epoch (wrong when clean[i] is False)."""
        if not self.augment:
            return caption(self.described[i], augment=False)
        return caption(self.described[i], python_rng(self.seed, f"caption/{self.epoch}/{i}"), **self.caption_kw)

    def __getitem__(self, i: int) -> dict:
        return super().__getitem__(i) | {"caption": self.caption(i), "clean": self.clean[i]}

    def collate(self, batch: list[dict]) -> dict:
        """images (B, 3, R, R), text (B, L) token ids, captions, clean (B,), label (B,), index (B,)."""
        captions = [b["caption"] for b in batch]
        out = {k: torch.stack([b[k] for b in batch]) for k in ("clean", "label")}
        return out | {"images": torch.stack([b["image"] for b in batch]), "captions": captions,
                      "text": self.tokenizer(captions, self.context_length),
                      "index": torch.tensor([b["index"] for b in batch])}


class VQADataset(ShapesDataset):
    """(image, question, answer) triples (LLaVA, VQA, fusion), questions_per_image per image.

    The prompt starts with '<image>' (image_token=True) where a LLaVA model splices the image features.
    answers: 10 annotator answers, of which n_match normalise to the true answer (at least min_agreement).
    """

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, *, max_objects: int = 3,
                 questions_per_image: int = 2, question_types=QUESTION_TYPES, min_agreement: int = 3,
                 image_token: bool = True, tokenizer: Tokenizer | None = None, **kw):
        super().__init__(n, resolution, seed, max_objects=max_objects, **kw)
        check_names(question_types, QUESTION_TYPES, "question type", "question_types")
        check_number(questions_per_image, "questions_per_image", integer=True, low=1, high=1000)  # more: a typo
        check_number(min_agreement, "min_agreement", integer=True, low=0, high=10)
        self.tokenizer = tokenizer or Tokenizer()
        rng = python_rng(seed, "questions")
        self.items = []
        for i in range(n):
            objs = self.scenes.objects(i)
            types = [t for t in question_types if t != "relation" or len(objs) > 1] or ["count"]
            for _ in range(questions_per_image):
                qa = make_question(objs, rng, rng.choice(types))
                n_match = rng.randint(min_agreement, 10)
                prompt = ("<image> " if image_token else "") + qa["question"]
                self.items.append(qa | {"image_index": i, "prompt": prompt, "n_match": n_match,
                                        "answers": annotator_answers(qa["answer"], rng, n_match)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> dict:
        qa = self.items[j]
        return qa | {"image": self.images[qa["image_index"]], "answer_id": ANSWERS.index(qa["answer"])}

    def collate(self, batch: list[dict]) -> dict:
        """images, prompt_ids (B, Lq), answer_ids (B, La) token ids, answer (B,) index into ANSWERS, texts."""
        return {"images": torch.stack([b["image"] for b in batch]),
                "prompt_ids": self.tokenizer([b["prompt"] for b in batch]),
                "answer_ids": self.tokenizer([b["answer"] for b in batch]),
                "answer": torch.tensor([b["answer_id"] for b in batch]),
                "questions": [b["question"] for b in batch], "answers_text": [b["answer"] for b in batch],
                "annotator_answers": [b["answers"] for b in batch], "types": [b["type"] for b in batch]}


class ObjectSoundDataset(CaptionDataset):
    """(image, sound, caption) triples (AudioCLIP / ImageBind): each object sounds in turn, left to right,
    with its colour as pitch and its shape as timbre. collate adds sounds (B, S) and sound_lengths (B,)."""

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, *, max_objects: int = 1,
                 sound_duration: float = 0.4, **kw):
        check_number(sound_duration, "sound_duration", low=0, low_open=True)
        super().__init__(n, resolution, seed, max_objects=max_objects, **kw)
        self.sounds, self.sound_lengths = scene_sounds(self.scenes, seed, sound_duration)

    def __getitem__(self, i: int) -> dict:
        return super().__getitem__(i) | {"sound": self.sounds[i], "sound_length": self.sound_lengths[i]}

    def collate(self, batch: list[dict]) -> dict:
        return super().collate(batch) | {"sounds": torch.stack([b["sound"] for b in batch]),
                                         "sound_lengths": torch.stack([b["sound_length"] for b in batch])}


class MovingShapesDataset(Dataset):
    """Clips of one moving shape with motion captions (VideoBERT). Item: video (T, 3, R, R), caption,
    direction, speed, bounced, label (colour * 3 + shape). collate adds text (B, L) token ids."""

    def __init__(self, n: int, resolution: int = 32, seed: int = 0, *, frames: int = 8,
                 tokenizer: Tokenizer | None = None, **kw):
        self.clips = moving_shapes(n, _check_seed(seed), frames=frames, resolution=resolution, **kw)
        self.tokenizer = tokenizer or Tokenizer()

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        c = self.clips
        return {"video": c.video[i], "caption": c.captions[i], "direction": c.direction[i],
                "speed": c.speed[i], "bounced": c.bounced[i], "label": c.scenes.label[i, 0]}

    def collate(self, batch: list[dict]) -> dict:
        keys = ("video", "direction", "speed", "bounced", "label")
        out = {k: torch.stack([b[k] for b in batch]) for k in keys}
        captions = [b["caption"] for b in batch]
        return out | {"captions": captions, "text": self.tokenizer(captions)}


class AVSpeechDataset(Dataset):
    """Spoken word sequences with a synchronised mouth video (AVSR).

    noise: "babble", "white" or None; snr_db: the exact SNR of the noisy audio (same noise pattern for every
    SNR, so a sweep over SNR varies only the level). Item: wave (S,), video (T, 1, H, W) at `fps`,
    targets (J,) CTC word ids (SPEECH_WORDS index + 1; 0 is the blank), transcript.
    """

    def __init__(self, n: int, seed: int = 0, *, snr_db: float | None = None, noise: str | None = "babble",
                 min_words: int = 2, max_words: int = 4, fps: int = 50, mouth_size: int = 16):
        if noise not in ("babble", "white", None):
            raise ValueError(f"unknown noise {noise!r}; allowed: 'babble', 'white', None")
        check_sizes(mouth_size=mouth_size)
        sentences = random_sentences(n, _check_seed(seed), min_words, max_words)
        self.speech = speak(sentences, seed)
        self.clean_wave = self.speech.wave
        self.wave = self.clean_wave
        if snr_db is not None and noise is not None:
            S = self.clean_wave.shape[1]
            sound = babble_noise(n, S, seed) if noise == "babble" else white_noise((n, S), seed)
            self.wave = add_noise(self.clean_wave, sound, snr_db, lengths=self.speech.lengths)
        self.video, self.video_lengths = talking_mouth(self.speech, fps, mouth_size, seed)
        self.targets, self.target_lengths = self.speech.ctc_targets()
        self.sample_rate = SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.speech)

    def __getitem__(self, i: int) -> dict:
        return {"wave": self.wave[i, :self.speech.lengths[i]], "video": self.video[i, :self.video_lengths[i]],
                "targets": self.targets[i, :self.target_lengths[i]],
                "transcript": " ".join(self.speech.words(i))}

    @staticmethod
    def collate(batch: list[dict]) -> dict:
        """wave (B, S), wave_lengths, video (B, T, 1, H, W), video_lengths, targets (B, J), target_lengths."""
        wave, wave_lengths = pad_stack([b["wave"] for b in batch])
        video, video_lengths = pad_stack([b["video"] for b in batch])
        targets, target_lengths = pad_stack([b["targets"] for b in batch])
        return {"wave": wave, "wave_lengths": wave_lengths, "video": video, "video_lengths": video_lengths,
                "targets": targets, "target_lengths": target_lengths,
                "transcripts": [b["transcript"] for b in batch]}
