"""Chapter 04's checks name the mistake when a wrong answer behaves like a known one."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.grading import CheckFailed, check


def test_the_study_guides_capfilt_is_named():
    def capfilt_select(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):  # as given
        keep = (web_scores > threshold) | (synthetic_scores > threshold)
        images = torch.arange(len(web_texts))[keep]
        texts = []
        for i in range(len(web_texts)):
            texts.append(synthetic_texts[i] if synthetic_scores[i] > web_scores[i] else web_texts[i])
        return images, texts

    with pytest.raises(CheckFailed, match="known mistake: keeps images where either caption passes"):
        check("04.capfilt_select", capfilt_select)


def test_hardest_negative_instead_of_a_draw_is_named():
    def sample_hard_negatives(sim, same, generator):
        blocked = torch.eye(len(sim), dtype=torch.bool, device=sim.device) | same
        return sim.masked_fill(blocked, float("-inf")).argmax(1), sim.T.masked_fill(blocked.T, float("-inf")).argmax(1)

    with pytest.raises(CheckFailed, match="known mistake: always takes the hardest negative"):
        check("04.sample_hard_negatives", sample_hard_negatives)


def test_itm_loss_without_negative_images_is_named():
    def itm_loss(score, image_tokens, ids, neg_text, neg_image):
        logits = torch.cat([score(image_tokens, ids), score(image_tokens, ids[neg_text])])
        labels = torch.cat([torch.ones(len(ids)), torch.zeros(len(ids))]).long().to(ids.device)
        return F.cross_entropy(logits, labels)

    with pytest.raises(CheckFailed, match="known mistake: scores only the"):
        check("04.itm_loss", itm_loss)
