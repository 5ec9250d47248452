"""The procedural multimodal world: shapes images, captions, questions, speech, sounds and videos.

Deterministic from a seed, vectorised, offline. Modules: `world` (scenes and rendering), `text` (captions,
questions, tokenizer), `audio` (speech, noise, object sounds, log-mel), `video` (moving shapes, talking
mouth), `datasets` (torch Datasets with collate functions for each chapter) and `samplers` (which items form
each batch).
"""

from mmcourse.data.audio import (
    COLOUR_PITCH,
    SAMPLE_RATE,
    SPEECH_WORDS,
    Speech,
    add_noise,
    babble_noise,
    log_mel_spectrogram,
    mel_filterbank,
    object_sounds,
    random_sentences,
    scene_sounds,
    speak,
    white_noise,
)
from mmcourse.data.datasets import (
    AVSpeechDataset,
    CaptionDataset,
    MovingShapesDataset,
    ObjectSoundDataset,
    ShapesDataset,
    VQADataset,
    pad_stack,
)
from mmcourse.data.samplers import (
    balanced_batches,
    class_frequencies,
    curriculum_batches,
    epoch_batches,
    inverse_frequency_weights,
    pacing,
)
from mmcourse.data.text import (
    ANSWERS,
    DIRECTIONS,
    EOT_ID,
    IMAGE_ID,
    PAD_ID,
    QUESTION_TYPES,
    SOT_ID,
    SPECIAL_TOKENS,
    SPEEDS,
    UNK_ID,
    ZERO_SHOT_TEMPLATES,
    Tokenizer,
    annotator_answers,
    caption,
    caption_is_correct,
    class_phrases,
    class_prompts,
    corrupt_objects,
    make_question,
    motion_caption,
    pad_batch,
    parse_caption,
    relation,
)
from mmcourse.data.video import Clips, moving_shapes, talking_mouth
from mmcourse.data.world import (
    CLASS_NAMES,
    COLOUR_NAMES,
    COLOURS,
    HELD_OUT,
    SHAPES,
    SIZES,
    Scenes,
    render,
    sample_scenes,
    shape_twins,
)

__all__ = [
    # world
    "COLOURS", "COLOUR_NAMES", "SHAPES", "SIZES", "HELD_OUT", "CLASS_NAMES", "Scenes", "sample_scenes",
    "shape_twins", "render",
    # text
    "ZERO_SHOT_TEMPLATES", "ANSWERS", "QUESTION_TYPES", "DIRECTIONS", "SPEEDS", "caption", "parse_caption",
    "caption_is_correct", "class_phrases",
    "class_prompts",
    "corrupt_objects", "relation", "make_question", "annotator_answers", "motion_caption",
    "SPECIAL_TOKENS", "PAD_ID", "SOT_ID", "EOT_ID", "UNK_ID", "IMAGE_ID", "Tokenizer", "pad_batch",
    # audio
    "SAMPLE_RATE", "SPEECH_WORDS", "COLOUR_PITCH", "Speech", "random_sentences", "speak", "add_noise",
    "white_noise", "babble_noise", "object_sounds", "scene_sounds", "mel_filterbank", "log_mel_spectrogram",
    # video
    "Clips", "moving_shapes", "talking_mouth",
    # datasets
    "ShapesDataset", "CaptionDataset", "VQADataset", "ObjectSoundDataset", "MovingShapesDataset",
    "AVSpeechDataset", "pad_stack",
    # samplers
    "epoch_batches", "inverse_frequency_weights", "balanced_batches", "class_frequencies", "pacing",
    "curriculum_batches",
]
