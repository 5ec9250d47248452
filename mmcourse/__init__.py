"""mmcourse: the helper package of the multimodal AI course."""

__version__ = "0.1.0"
