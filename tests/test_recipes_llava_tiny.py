"""The tiny LM and tiny LLaVA recipes: the corpus, the stages' frozen parts, the answers' plumbing.

Untrained stand-ins for the zoo's models (a one-block image tower, a two-layer LM): these tests check what each
stage trains and that answers come back in order, not how good they are."""

import pytest
import torch

from mmcourse.data.chat import IGNORE_INDEX, IMAGE_TOKEN_INDEX, chat_tokenizer
from mmcourse.nn import VisionTransformer
from mmcourse.recipes import llava_tiny as R
from mmcourse.recipes import tiny_lm


@pytest.fixture(scope="module")
def visual():
    torch.manual_seed(0)
    return VisionTransformer(32, 4, width=64, layers=2, heads=4, output_dim=64, conv_stem=True).eval()


@pytest.fixture(scope="module")
def lm():
    return tiny_lm.build(layers=2)


def test_corpus_is_plain_text_with_every_token_a_target():
    docs = tiny_lm.corpus(60, seed=3)
    tok = chat_tokenizer()
    assert all(d.ids == d.labels for d in docs)
    assert all(IMAGE_TOKEN_INDEX not in d.ids and tok.unk_id not in d.ids for d in docs)
    assert any(tok.stoi["<assistant>"] in d.ids for d in docs) and any(tok.stoi["<user>"] not in d.ids for d in docs)
    assert max(len(d.ids) for d in docs) <= tiny_lm.CONTEXT_LENGTH
    assert [d.ids for d in docs] == [d.ids for d in tiny_lm.corpus(60, seed=3)]


def test_pretraining_lowers_perplexity():
    model = tiny_lm.build(layers=1)
    docs = tiny_lm.corpus(200)
    before = tiny_lm.perplexity(model, docs)
    tiny_lm.train(model, docs, steps=30, batch_size=16, progress=False)
    assert tiny_lm.perplexity(model, docs) < 0.5 * before


def test_stream_batches_hold_one_image_per_conversation(visual):
    batch = R.stream(visual, "qa", batch_size=4, seed=1)(0)
    assert batch["features"].shape == (4, 64, 64)
    assert (batch["ids"] == IMAGE_TOKEN_INDEX).sum(1).tolist() == [1, 1, 1, 1]
    assert ((batch["labels"] != IGNORE_INDEX).sum(1) >= 2).all()  # an answer and its <eot> at least
    again = R.stream(visual, "qa", batch_size=4, seed=1)(0)
    assert torch.equal(batch["ids"], again["ids"]) and torch.equal(batch["features"], again["features"])
    assert not torch.equal(R.stream(visual, "qa", batch_size=4, seed=1)(1)["features"], batch["features"])
    with pytest.raises(ValueError, match="kind"):
        R.stream(visual, "chat", batch_size=4)(0)


@pytest.mark.parametrize("stage, tune_lm, lm_changes", [(1, True, False), (2, False, False), (2, True, True)])
def test_each_stage_trains_what_it_should(visual, lm, stage, tune_lm, lm_changes):
    model = R.build(visual, lm, "linear")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    R.train(model, stage, tune_lm=tune_lm, steps=2, batch_size=4, progress=False, warmup=1)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert {k for k in changed if k.startswith("projector.")} == {"projector.weight", "projector.bias"}
    assert any(k.startswith("language_model.") for k in changed) == lm_changes
    assert not any(k.startswith("vision_tower.") for k in changed)  # BatchNorm statistics included
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in lm.state_dict().items())  # the zoo's copy untouched


def test_answers_come_back_in_order_and_batched_equals_alone(visual, lm):
    model = R.build(visual, lm)
    data = R.vqa_set(visual, n=6, seed=5)
    assert len(data.questions) == len(data.answers) == 6 and all(len(a) == 10 for a in data.answers)
    batched = R.answer(model, data.questions, data.features, batch_size=6)
    alone = [R.answer(model, [q], data.features[i:i + 1])[0] for i, q in enumerate(data.questions)]
    assert batched == alone
    blind = R.answer(model.language_model, data.questions)
    assert len(blind) == 6 and R.evaluate(model, {"t": data})["t"]["exact"] == R.breakdown(batched, data)["exact"]
    ids, lengths = R.prompts(data.questions)
    tok = chat_tokenizer()
    assert (ids[torch.arange(6), lengths - 1] == tok.stoi["<assistant>"]).all()


def test_breakdown_scores_the_truth_at_the_ceiling_and_counts_each_type(visual):
    data = R.vqa_set(visual, n=40, seed=6)
    truth = R.breakdown(data.truths, data)
    assert truth["exact"] == truth["no relations"] == 1.0 and truth["official"] == truth["ceiling"] < 1.0
    assert set(truth["by type"]) == set(data.types) and all(v == 1.0 for v in truth["by type"].values())
    wrong = R.breakdown(["purple elephant"] * 40, data)
    assert wrong["exact"] == wrong["official"] == 0.0 and wrong["ceiling"] == truth["ceiling"]
    half = [t if k % 2 else "purple elephant" for k, t in enumerate(data.truths)]
    exact = R.breakdown(half, data)
    assert exact["exact"] == 0.5
    kept = [k for k, t in enumerate(data.types) if t != "relation"]
    assert exact["no relations"] == sum(k % 2 for k in kept) / len(kept)
    with pytest.raises(ValueError):
        R.breakdown(data.truths[:-1], data)


def test_in_words_tells_each_scene_before_its_question(visual):
    data = R.vqa_set(visual, n=5, seed=6)
    told = R.in_words(data)
    assert all(t.endswith(". " + q) for t, q in zip(told, data.questions))
    assert all(len(t) > len(q) + 10 for t, q in zip(told, data.questions))
    assert told == R.in_words(data)
