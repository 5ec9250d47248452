"""Evaluation metrics of multimodal models, each built from its definition and tested against the reference.

retrieval  — Recall@K, MRR (full ranking), MRR@K, median/mean rank from a similarity matrix
captioning — BLEU-1..4, ROUGE-L, CIDEr-D as coco-caption computes them
vqa        — the official VQA accuracy (answer normalisation, leave-one-annotator-out)
speech     — WER and CER by edit distance
clipscore  — CLIPScore and RefCLIPScore from CLIP features
"""

from mmcourse.metrics.captioning import (
    caption_metrics,
    cider_d,
    corpus_bleu,
    rouge_l,
    sentence_bleu,
    sentence_caption_metrics,
    sentence_cider_d,
    sentence_rouge_l,
    tokenize,
)
from mmcourse.metrics.clipscore import clip_score, ref_clip_score
from mmcourse.metrics.retrieval import (
    first_relevant_rank,
    image_text_retrieval,
    mean_rank,
    mean_reciprocal_rank,
    median_rank,
    mrr_at_k,
    recall_at_k,
    retrieval_metrics,
)
from mmcourse.metrics.speech import char_error_rate, edit_distance, word_error_rate
from mmcourse.metrics.vqa import (
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_accuracy_simplified,
    vqa_score,
)

__all__ = [
    "first_relevant_rank",
    "recall_at_k",
    "mean_reciprocal_rank",
    "mrr_at_k",
    "median_rank",
    "mean_rank",
    "retrieval_metrics",
    "image_text_retrieval",
    "tokenize",
    "corpus_bleu",
    "sentence_bleu",
    "rouge_l",
    "sentence_rouge_l",
    "cider_d",
    "sentence_cider_d",
    "caption_metrics",
    "sentence_caption_metrics",
    "normalize_answer",
    "process_punctuation",
    "process_digit_article",
    "vqa_score",
    "vqa_accuracy",
    "vqa_accuracy_simplified",
    "edit_distance",
    "word_error_rate",
    "char_error_rate",
    "clip_score",
    "ref_clip_score",
]
