"""Chapter 07's checks: other right ways to write each answer pass; the known mistakes are named; the experiment
refuses a rate outside [0, 1] before it trains anything."""

import pytest
import torch

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch07


def test_greedy_decode_with_itertools_groupby_passes(capsys):
    from itertools import groupby

    def grouped(log_probs, lengths):
        return [[c for c, _ in groupby(row[:n]) if c != 0]
                for row, n in zip(log_probs.argmax(-1).tolist(), lengths.tolist())]

    check("07.greedy_decode", grouped)
    assert capsys.readouterr().out.startswith("✓ 07.greedy_decode")


def test_greedy_decode_that_drops_blanks_first_is_named(capsys):
    with pytest.raises(CheckFailed, match="a blank between the copies"):
        check("07.greedy_decode", ch07._decode_blanks_first)


def test_gated_fusion_written_as_a_lerp_passes(capsys):
    def lerped(a, v, gate):
        g = gate(torch.cat([a, v], dim=2)).sigmoid()
        return torch.lerp(v, a, g), g.squeeze(-1)

    check("07.gated_fusion", lerped)
    assert capsys.readouterr().out.startswith("✓ 07.gated_fusion")


def test_the_reshape_fixed_with_transpose_and_contiguous_passes(capsys):
    def transposed(features):
        B, C, T, H, W = features.shape
        return features.transpose(1, 2).contiguous().view(B, T, -1)

    check("07.fix_reshape", transposed)
    assert capsys.readouterr().out.startswith("✓ 07.fix_reshape")


def test_the_reshape_bug_is_caught_at_the_first_frame_that_mixes_channels():
    with pytest.raises(CheckFailed, match="frame 0: every channel's pixels at time 0"):
        check("07.fix_reshape", ch07._frames_view)


@pytest.mark.parametrize("choice", [{"p_drop": 1.5}, {"p_drop": -0.1}, {"p_drop": True}, {"rate": 0.2}, 0.2])
def test_the_experiment_refuses_a_bad_rate_before_training(monkeypatch, choice):
    monkeypatch.setattr(ch07, "camera_off_wer", lambda p: pytest.fail("trained although the rate was refused"))
    with pytest.raises(CheckFailed):
        check("07.dropout_rate", lambda: choice)
