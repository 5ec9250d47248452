"""Bad input across the public API: every call below must raise a ValueError / TypeError / IndexError / KeyError
whose message names the argument (or what is wrong with it), never return a silently wrong result, never fail deep
inside torch. Cases: wrong shapes, dtypes and types, empty inputs, NaN, zero / negative / fractional sizes,
mismatched batches, ids out of range, unknown names. Add a row for every public function a chapter adds."""

import random

import pytest
import torch

from mmcourse import data as D
from mmcourse import distributed, results, zoo
from mmcourse import losses as L
from mmcourse import metrics as M
from mmcourse import nn as N
from mmcourse.data import chat
from mmcourse.losses.distributed import distributed_clip_loss, distributed_siglip_loss
from mmcourse.models import CLIP, CLIPConfig, zero_shot_predict
from mmcourse.models.blip import BLIP, BLIPConfig
from mmcourse.models.fusion import FusionClassifier, ImageEncoder, SoundEncoder, TwoStreamClassifier
from mmcourse.models.llava import splice
from mmcourse.models.videobert import VideoBERT, VideoTokenizer
from mmcourse.nn import VectorQuantizer, perplexity
from mmcourse.nn import fusion as NF
from mmcourse.recipes import fusion_tiny, strategies_tiny
from mmcourse.strategies import OGMGE, ogm_coefficients
from mmcourse.train import fit

nan = float("nan")
rng = random.Random(0)
scenes = D.sample_scenes(3, 0)
objs = scenes.objects(0)
tok = D.Tokenizer()
ds = D.ShapesDataset(8)
sim, rel = torch.randn(4, 4), torch.eye(4, dtype=torch.bool)
dec = N.TextDecoder(20, 8, 16, 1, 2, eot_id=2, pad_id=0, sot_id=1)
clip = CLIP(CLIPConfig.tiny(30, 2))
lin = torch.nn.Linear(2, 1)
quantizer = VectorQuantizer(8, 4)
CASES = [
    ("sample_scenes n=0", "n", lambda: D.sample_scenes(0)),
    ("sample_scenes n=2.5", "n", lambda: D.sample_scenes(2.5)),
    ("sample_scenes max_objects=0", "max_objects", lambda: D.sample_scenes(3, max_objects=0)),
    ("sample_scenes max_objects=9", "max_objects", lambda: D.sample_scenes(3, max_objects=9)),
    ("sample_scenes split", "split", lambda: D.sample_scenes(3, split="val")),
    ("sample_scenes colours", "colour", lambda: D.sample_scenes(3, colours=["mauve"])),
    ("sample_scenes seed str", "seed", lambda: D.sample_scenes(3, "zero")),
    ("render resolution 7", "resolution", lambda: D.render(scenes, 7)),
    ("render resolution float", "resolution", lambda: D.render(scenes, 32.0)),
    ("render not scenes", "scenes", lambda: D.render("scenes")),
    ("render noise -1", "noise", lambda: D.render(scenes, 32, noise=-1.0)),
    ("caption empty", "objects", lambda: D.caption([])),
    ("caption no rng", "rng", lambda: D.caption(objs, None)),
    ("make_question empty", "objects", lambda: D.make_question([], rng)),
    ("make_question type", "question type", lambda: D.make_question(objs, rng, "why")),
    ("annotator_answers answer", "answer", lambda: D.annotator_answers("mauve", rng, 3)),
    ("annotator_answers n_match", "n_match", lambda: D.annotator_answers("red", rng, 11)),
    ("encode int", "encode", lambda: tok.encode(5)),
    ("encode empty", "empty", lambda: tok.encode("")),
    ("encode_batch empty", "empty", lambda: tok.encode_batch([])),
    ("encode_batch context 1", "context_length", lambda: tok(["a red circle"], 1)),
    ("decode -1", "token ids", lambda: tok.decode([1, -1])),
    ("decode_batch 1d", "ids", lambda: tok.decode_batch(torch.tensor([1, 2]))),
    ("pad_batch empty", "rows", lambda: D.pad_batch([])),
    ("ShapesDataset n=0", "n", lambda: D.ShapesDataset(0)),
    ("ShapesDataset resolution", "resolution", lambda: D.ShapesDataset(4, 7)),
    ("CaptionDataset noise", "noise_fraction", lambda: D.CaptionDataset(4, noise_fraction=1.5)),
    ("CaptionDataset captions_per_image 0", "captions_per_image", lambda: D.CaptionDataset(4, captions_per_image=0)),
    ("VQADataset min_agreement", "min_agreement", lambda: D.VQADataset(4, min_agreement=11)),
    ("VQADataset questions_per_image 0", "questions_per_image", lambda: D.VQADataset(4, questions_per_image=0)),
    ("epoch_batches 0", "batch_size", lambda: D.epoch_batches(ds, 0)),
    ("epoch_batches too big", "batch_size", lambda: D.epoch_batches(ds, 100)),
    ("epoch_batches float", "batch_size", lambda: D.epoch_batches(ds, 2.5)),
    ("qa_turns questions 0", "questions", lambda: chat.qa_turns(objs, rng, 0)),
    ("tokenize_conversation no assistant", "assistant",
     lambda: chat.tokenize_conversation([("user", "hi")], chat.chat_tokenizer())),
    ("pad_conversations empty", "conversations", lambda: chat.pad_conversations([])),
    ("add_noise snr nan", "snr", lambda: D.add_noise(torch.randn(100), torch.randn(100), nan)),
    ("add_noise length", "noise", lambda: D.add_noise(torch.randn(100), torch.randn(50), 0.0)),
    ("log_mel empty", "wave", lambda: D.log_mel_spectrogram(torch.zeros(0))),
    ("babble_noise n", "n", lambda: D.babble_noise(-5, 100)),
    ("MultiheadAttention heads", "heads", lambda: N.MultiheadAttention(10, 3)),
    ("MultiheadAttention x width", "x", lambda: N.MultiheadAttention(8, 2)(torch.randn(2, 3, 6))),
    ("sdpa rank", "q", lambda: N.scaled_dot_product_attention(torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4))),
    ("sdpa k mismatch", "k",
     lambda: N.scaled_dot_product_attention(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 6), torch.randn(1, 2, 5, 4))),
    ("Transformer layers -1", "layers", lambda: N.Transformer(8, -1, 2)),
    ("Transformer x width", "x", lambda: N.Transformer(8, 1, 2)(torch.randn(2, 3, 4))),
    ("ViT image size", "image_size", lambda: N.VisionTransformer(30, 4)),
    ("ViT images size", "images", lambda: N.VisionTransformer(32, 4, 16, 1, 2)(torch.randn(1, 3, 28, 28))),
    ("ViT images int", "images",
     lambda: N.VisionTransformer(32, 4, 16, 1, 2)(torch.zeros(1, 3, 32, 32, dtype=torch.long))),
    ("patchify", "patch_size", lambda: N.patchify(torch.randn(1, 3, 30, 30), 4)),
    ("TextDecoder eot", "eot_id", lambda: N.TextDecoder(10, 8, 16, 1, 2, eot_id=12, pad_id=0)),
    ("decoder ids range", "ids", lambda: dec(torch.tensor([[1, 25]]))),
    ("decoder ids float", "ids", lambda: dec(torch.tensor([[1.0, 2.0]]))),
    ("decoder too long", "context_length", lambda: dec(torch.ones(1, 9, dtype=torch.long))),
    ("generate temperature", "temperature",
     lambda: dec.generate(torch.ones(1, 2, dtype=torch.long), do_sample=True, temperature=0.0)),
    ("generate top_p", "top_p", lambda: dec.generate(torch.ones(1, 2, dtype=torch.long), top_p=0.0)),
    ("generate beams", "num_beams", lambda: dec.generate(torch.ones(1, 2, dtype=torch.long), num_beams=0)),
    ("generate max_new", "max_new_tokens", lambda: dec.generate(torch.ones(1, 2, dtype=torch.long), max_new_tokens=0)),
    ("generate lengths", "lengths",
     lambda: dec.generate(torch.ones(2, 2, dtype=torch.long), lengths=torch.tensor([3, 1]))),
    ("eot_positions float", "ids", lambda: N.eot_positions(torch.ones(2, 3), 2)),
    ("pool_eot mismatch", "ids", lambda: N.pool_eot(torch.randn(2, 3, 4), torch.ones(3, 3, dtype=torch.long), 2)),
    ("VectorQuantizer num_codes 1", "num_codes", lambda: VectorQuantizer(1, 4)),
    ("VectorQuantizer reset_threshold 2", "reset_threshold", lambda: VectorQuantizer(8, 4, reset_threshold=2.0)),
    ("VectorQuantizer z channels", "channels", lambda: quantizer(torch.randn(2, 3, 5, 5))),
    ("VectorQuantizer z empty", "feature vector", lambda: quantizer(torch.randn(0, 4, 5, 5))),
    ("VectorQuantizer z int", "floating", lambda: quantizer(torch.ones(2, 4, 3, dtype=torch.long))),
    ("VectorQuantizer lookup range", "codes must lie", lambda: quantizer.lookup(torch.tensor([[0, 8]]))),
    ("VectorQuantizer lookup float", "codes", lambda: quantizer.lookup(torch.tensor([[0.0, 1.0]]))),
    ("perplexity codes out of range", "codes must lie", lambda: perplexity(torch.tensor([0, 9]), 4)),
    ("perplexity empty", "empty", lambda: perplexity(torch.zeros(0, dtype=torch.long), 4)),
    ("perplexity float codes", "codes", lambda: perplexity(torch.tensor([0.0, 1.0]), 4)),
    ("perplexity num_codes 0", "num_codes", lambda: perplexity(torch.tensor([0]), 0)),
    ("bert_mask p > 1", "p", lambda: L.bert_mask(torch.zeros(2, 3, dtype=torch.long), 1, 5, 1.5)),
    ("bert_mask ids float", "ids", lambda: L.bert_mask(torch.zeros(2, 3), 1, 5)),
    ("VideoTokenizer frames last", "channels first", lambda: VideoTokenizer(8, 4, 8)(torch.rand(1, 8, 3, 16, 16))),
    ("VideoBERT codes length", "codes", lambda: VideoBERT(8, 4, 10, 3, 9)(torch.zeros(1, 5, dtype=torch.long),
                                                                          torch.zeros(1, 3, dtype=torch.long))),
    ("clip_loss scale 0", "logit_scale", lambda: L.clip_loss(torch.randn(2, 4), torch.randn(2, 4), 0.0)),
    ("clip_loss empty", "batch", lambda: L.clip_loss(torch.randn(0, 4), torch.randn(0, 4), 1.0)),
    ("clip_loss mismatch", "text_features", lambda: L.clip_loss(torch.randn(2, 4), torch.randn(3, 4), 1.0)),
    ("siglip bias vector", "logit_bias",
     lambda: L.siglip_loss(torch.randn(2, 4), torch.randn(2, 4), 1.0, torch.zeros(2))),
    ("lm_loss all ignored", "labels", lambda: L.lm_loss(torch.randn(1, 3, 5), torch.full((1, 3), -100))),
    ("lm_loss shape", "labels", lambda: L.lm_loss(torch.randn(1, 3, 5), torch.zeros(1, 4, dtype=torch.long))),
    ("lm_loss label range", "labels", lambda: L.lm_loss(torch.randn(1, 3, 5), torch.tensor([[0, 7, 1]]))),
    ("symmetric_ce shape", "logits_per_text",
     lambda: L.symmetric_cross_entropy(torch.randn(2, 3), torch.randn(3, 2), torch.arange(2))),
    ("hard_negative_probs non-square", "sim", lambda: L.hard_negative_probs(torch.randn(2, 3), None)),
    ("sample_hard_negatives B=1", "sim", lambda: L.sample_hard_negatives(torch.randn(1, 1), None, torch.Generator())),
    ("recall k=0", "k", lambda: M.recall_at_k(sim, rel, 0)),
    ("recall k float", "k", lambda: M.recall_at_k(sim, rel, 1.5)),
    ("recall relevant float", "relevant", lambda: M.recall_at_k(sim, rel.float(), 1)),
    ("recall relevant shape", "relevant", lambda: M.recall_at_k(sim, rel[:3], 1)),
    ("recall nan sim", "similarity", lambda: M.recall_at_k(torch.full((4, 4), nan), rel, 1)),
    ("mrr no relevant", "relevant", lambda: M.mean_reciprocal_rank(sim, torch.zeros(4, 4, dtype=torch.bool))),
    ("mrr_at_k k 0", "k", lambda: M.mrr_at_k(sim, rel, 0)),
    ("corpus_bleu empty", "hypotheses", lambda: M.corpus_bleu([], [])),
    ("corpus_bleu mismatch", "references", lambda: M.corpus_bleu(["a cat"], [["a cat"], ["a dog"]])),
    ("corpus_bleu no refs", "references", lambda: M.corpus_bleu(["a cat"], [[]])),
    ("corpus_bleu str refs", "references", lambda: M.corpus_bleu(["a cat"], ["a cat"])),
    ("bleu max_n 0", "max_n", lambda: M.corpus_bleu(["a cat"], [["a cat"]], max_n=0)),
    ("cider sigma 0", "sigma", lambda: M.cider_d(["a cat"], [["a cat"]], sigma=0.0)),
    ("rouge beta -1", "beta", lambda: M.rouge_l(["a cat"], [["a cat"]], beta=-1.0)),
    ("vqa_score 9 answers", "answers", lambda: M.vqa_score("2", ["2"] * 9)),
    ("vqa_accuracy mismatch", "answers", lambda: M.vqa_accuracy(["2", "3"], [["2"] * 10])),
    ("vqa_score prediction int", "answer", lambda: M.vqa_score(2, ["2"] * 10)),
    ("wer empty references", "references", lambda: M.word_error_rate([], [])),
    ("cer non-str", "transcript", lambda: M.char_error_rate([1], ["a"])),
    ("clip_score mismatch", "text_features", lambda: M.clip_score(torch.randn(2, 4), torch.randn(3, 4))),
    ("clip_score nan", "NaN", lambda: M.clip_score(torch.full((2, 4), nan), torch.randn(2, 4))),
    ("CLIPConfig loss", "loss", lambda: CLIP(CLIPConfig.tiny(30, 2, loss="hinge"))),
    ("CLIP images size", "images", lambda: clip.encode_image(torch.randn(1, 3, 16, 16))),
    ("CLIP ids float", "ids", lambda: clip.encode_text(torch.ones(1, 5))),
    ("zero_shot_predict nan", "weights",
     lambda: zero_shot_predict(clip, torch.rand(1, 3, 32, 32), torch.full((64, 3), nan))),
    ("BLIPConfig enc_id", "enc_id", lambda: BLIP(BLIPConfig(30, 10, enc_id=40, dec_id=29, eot_id=2, pad_id=0))),
    ("splice count", "images",
     lambda: splice(torch.tensor([[1, -200]]), torch.randn(2, 3, 16), dec.embed, image_token_index=-200, pad_id=0)),
    ("fit grad_clip", "grad_clip",
     lambda: fit(lin, lambda m, b: m(b).sum(), lambda s: torch.randn(2, 2), 1, grad_clip=-1.0, progress=False)),
    ("fit steps", "steps", lambda: fit(lin, lambda m, b: m(b).sum(), lambda s: torch.randn(2, 2), 0, progress=False)),
    ("fit lr nan", "lr",
     lambda: fit(lin, lambda m, b: m(b).sum(), lambda s: torch.randn(2, 2), 1, lr=nan, progress=False)),
    ("ConcatFusion batch mismatch", "b", lambda: NF.ConcatFusion(4, 4, 8)(torch.randn(2, 3, 4), torch.randn(3, 3, 4))),
    ("TensorFusion width", "expected shape",
     lambda: NF.TensorFusion(4, 4, 8)(torch.randn(2, 3, 5), torch.randn(2, 3, 4))),
    ("CrossAttentionFusion int", "floating", lambda: NF.CrossAttentionFusion(4, 4, 8)(torch.ones(2, 3, 4).long(),
                                                                                       torch.randn(2, 3, 4))),
    ("LateFusion all missing", "missing", lambda: NF.LateFusion(2)([None, None])),
    ("modality_dropout p", "p", lambda: NF.modality_dropout(torch.ones(2, 3), torch.ones(2, 3), 2.0)),
    ("modality_dropout batch", "batch size", lambda: NF.modality_dropout(torch.ones(2, 3), torch.ones(3, 3), 0.5)),
    ("FusionClassifier method", "method", lambda: FusionClassifier("sum", (4, 8), (3, 8), 2)),
    ("FusionClassifier both None", "both modalities",
     lambda: FusionClassifier("concat", (4, 8), (3, 8), 2)(None, None)),
    ("FusionClassifier batch", "sound", lambda: FusionClassifier("cross", (4, 8), (3, 8), 2)(torch.randn(2, 4, 8),
                                                                                           torch.randn(3, 3, 8))),
    ("SoundEncoder mel shape", "mel", lambda: SoundEncoder(40, 41)(torch.randn(2, 41, 40))),
    ("fusion task_data task", "task", lambda: fusion_tiny.task_data("xor", 4)),
    ("fusion task_data n", "n", lambda: fusion_tiny.task_data("control", 0)),
    ("fusion from_scenes sounding", "sounding",
     lambda: fusion_tiny.from_scenes("control", D.sample_scenes(2, 0, max_objects=1), torch.tensor([0, 1]))),
    ("inverse_frequency_weights missing class", "no example",
     lambda: D.inverse_frequency_weights(torch.tensor([0, 2]))),
    ("inverse_frequency_weights float", "labels", lambda: D.inverse_frequency_weights(torch.tensor([0.0, 1.0]))),
    ("balanced_batches batch_size 0", "batch_size", lambda: D.balanced_batches(torch.tensor([0, 1]), 0)),
    ("class_frequencies empty", "indices", lambda: D.class_frequencies(torch.tensor([], dtype=torch.long),
                                                                       torch.tensor([0, 1]), 2)),
    ("pacing start 0", "start", lambda: D.pacing(0, 10, 0.0)),
    ("pacing steps 0", "steps", lambda: D.pacing(0, 0)),
    ("curriculum_batches empty", "difficulty", lambda: D.curriculum_batches(torch.zeros(0), 2, 4)),
    ("curriculum_batches empty stage", "pace",
     lambda: D.curriculum_batches(torch.zeros(4), 2, 4, pace=lambda step, steps: 0.0)(0)),
    ("ogm_coefficients one stream", "two streams",
     lambda: ogm_coefficients({"image": torch.randn(2, 3)}, torch.tensor([0, 1]), 1.0)),
    ("ogm_coefficients alpha", "alpha",
     lambda: ogm_coefficients({"a": torch.randn(2, 3), "b": torch.randn(2, 3)}, torch.tensor([0, 1]), -1.0)),
    ("ogm_coefficients labels", "logits['b']",
     lambda: ogm_coefficients({"a": torch.randn(2, 3), "b": torch.randn(3, 3)}, torch.tensor([0, 1]), 1.0)),
    ("OGMGE alpha nan", "alpha", lambda: OGMGE(nan)),
    ("TwoStreamClassifier batch", "same B",
     lambda: TwoStreamClassifier(40, 41)(torch.rand(2, 3, 16, 16), torch.randn(3, 40, 41))),
    ("TwoStreamClassifier classes", "num_classes", lambda: TwoStreamClassifier(40, 41, num_classes=1)),
    ("ImageEncoder channels", "images", lambda: ImageEncoder()(torch.rand(2, 1, 16, 16))),
    ("strategies task_data n", "n", lambda: strategies_tiny.task_data(0)),
    ("strategies train mode", "mode", lambda: strategies_tiny.train("late", None)),
    ("strategies long_tailed imbalance", "imbalance",
     lambda: strategies_tiny.long_tailed(torch.tensor([0, 1]), imbalance=0.5)),
    ("launch backend", "backend", lambda: distributed.launch(distributed.check_all, backend="mpi")),
    ("launch world_size", "world_size", lambda: distributed.launch(distributed.check_all, world_size=0)),
    ("launch lambda", "importable", lambda: distributed.launch(lambda: 1)),
    ("distributed_clip_loss shapes", "text_features",
     lambda: distributed_clip_loss(torch.randn(4, 8), torch.randn(3, 8), 10.0)),
    ("distributed_siglip_loss scale", "logit_scale",
     lambda: distributed_siglip_loss(torch.randn(4, 8), torch.randn(4, 8), -1.0, -10.0)),
    ("gradient_check batch", "global_batch", lambda: distributed.gradient_check(global_batch=0)),
    ("zoo unknown", "zoo entry", lambda: zoo.load("nope")),
    ("zoo register name", "zoo entry names", lambda: zoo.register("../x", 1, lambda: lin, lambda m: None)),
    ("zoo history unknown", "zoo entry", lambda: zoo.history("nope")),
    ("record higher", "higher_is_better", lambda: results.record("00", "x", 1.0, 0.5, higher_is_better="no")),
    ("record bar str", "bar", lambda: results.record("00", "x", 1.0, "high")),
    ("record value str", "value", lambda: results.record("00", "x", "good", 0.5)),
]


CLEAR = (ValueError, TypeError, IndexError, KeyError)


@pytest.mark.parametrize("names, thunk", [((case, arg), thunk) for case, arg, thunk in CASES],
                         ids=[case for case, _, _ in CASES])
def test_bad_input_gets_a_clear_error(names, thunk):
    case, arg = names
    with pytest.raises(CLEAR) as info:
        thunk()
    assert arg.lower() in str(info.value).lower(), f"{case}: the message does not name {arg!r}: {info.value}"
