"""Chapter 05's checks: a splice written another way passes; the fix check measures the loss that the image
positions add; a label tensor made on the CPU is caught on a CPU-only machine; padding values are free."""

import pytest
import torch

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch05


def loop_splice(ids, labels, image_embeds, embedding, image_token_index=-200, pad_id=0, pad_value=0.0):
    """Row by row, as LLaVA's prepare_inputs_labels_for_multimodal writes it, padding with `pad_value`."""
    embeds, out_labels, k = [], [], 0
    for row, lab in zip(ids, labels, strict=True):
        keep = row != pad_id
        row, lab = row[keep], lab[keep]
        e, y = [], []
        for j in range(len(row)):
            if row[j] == image_token_index:
                e.append(image_embeds[k])
                y.append(torch.full((image_embeds.shape[1],), -100, dtype=lab.dtype, device=row.device))
                k += 1
            else:
                e.append(embedding(row[j:j + 1]))
                y.append(lab[j:j + 1])
        embeds.append(torch.cat(e))
        out_labels.append(torch.cat(y))
    T = max(len(x) for x in embeds)
    embeds = [torch.cat([x, x.new_full((T - len(x), x.shape[1]), pad_value)]) for x in embeds]
    out_labels = [torch.cat([y, y.new_full((T - len(y),), -100)]) for y in out_labels]
    return torch.stack(embeds), torch.stack(out_labels)


def test_a_row_by_row_splice_passes_whatever_it_puts_at_the_padding(capsys):
    check("05.splice", lambda *a: loop_splice(*a, pad_value=7.0))
    assert capsys.readouterr().out.startswith("✓ 05.splice")


def test_the_fix_check_reports_the_loss_the_image_positions_add():
    def zeros_on_the_right_device(ids, labels, image_embeds, embedding, image_token_index=-200, pad_id=0):
        embeds, new_labels = [], []
        for b in range(len(ids)):
            j = int((ids[b] == image_token_index).nonzero())
            text = embedding(ids[b].masked_fill(ids[b] == image_token_index, pad_id))
            embeds.append(torch.cat([text[:j], image_embeds[b], text[j + 1:]]))
            zeros = torch.zeros(image_embeds.shape[1], dtype=labels.dtype, device=ids.device)
            new_labels.append(torch.cat([labels[b, :j], zeros, labels[b, j + 1:]]))
        return torch.stack(embeds), torch.stack(new_labels)

    leak = r"put 9 image or padding positions into the loss; .* they are 9 of the 17 positions it averages over"
    with pytest.raises(CheckFailed, match=leak + r", and move it from \d\.\d{3} to \d\.\d{3}") as err:
        check("05.fix_splice", zeros_on_the_right_device)
    assert "-100" in str(err.value)


def test_labels_made_on_the_cpu_are_caught_without_a_gpu():
    def no_device(ids, labels, image_embeds, embedding, image_token_index=-200, pad_id=0):
        embeds, new_labels = [], []
        for b in range(len(ids)):
            j = int((ids[b] == image_token_index).nonzero())
            text = embedding(ids[b].masked_fill(ids[b] == image_token_index, pad_id))
            embeds.append(torch.cat([text[:j], image_embeds[b], text[j + 1:]]))
            ignore = torch.full((image_embeds.shape[1],), -100, dtype=labels.dtype)  # no device=
            new_labels.append(torch.cat([labels[b, :j], ignore, labels[b, j + 1:]]))
        return torch.stack(embeds), torch.stack(new_labels)

    with pytest.raises(CheckFailed, match="without device="):
        check("05.fix_splice", no_device)


def test_the_splice_check_names_labels_spliced_like_ids():
    with pytest.raises(CheckFailed, match="the labels") as err:
        check("05.splice", ch05._splice_labels_like_ids)
    assert "placeholder's own label" in str(err.value)
