"""Pictures, sounds and widgets: `viz.world` for the data, `viz.attention` for what transformers look at,
`viz.matrices` for score matrices (logits, probabilities, gradients) side by side, `viz.training` for training
curves."""

from mmcourse.viz.attention import (
    attention_explorer,
    cls_attention_grid,
    plot_attention_beside,
    plot_attention_maps,
    plot_attention_rollout,
    plot_pos_embedding_similarity,
    plot_word_attention,
    text_image_explorer,
)
from mmcourse.viz.matrices import plot_loss_split, plot_matrices
from mmcourse.viz.training import plot_history
from mmcourse.viz.world import play_audio, plot_spectrogram, show_images, show_video, video_rows, video_strip

__all__ = [
    "attention_explorer",
    "cls_attention_grid",
    "plot_attention_beside",
    "plot_attention_maps",
    "plot_attention_rollout",
    "plot_word_attention",
    "text_image_explorer",
    "plot_pos_embedding_similarity",
    "play_audio",
    "plot_history",
    "plot_loss_split",
    "plot_matrices",
    "plot_spectrogram",
    "show_images",
    "show_video",
    "video_strip",
    "video_rows",
]
