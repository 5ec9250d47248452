# JupyterLab's settings for the course (`make lab` passes this file; so do the browser tests): a lecture opened and
# saved unchanged stays unchanged to git, although its kernel writes the Python version into it.
import warnings

from mmcourse.dev.notebooks import drop_python_version

c.ContentsManager.pre_save_hook = drop_python_version  # noqa: F821 (c: the config object Jupyter provides)
# jupytext's server extension derives its contents manager from the configured one, and the setting is applied to
# it again: traitlets then warns that the hook replaces itself.
warnings.filterwarnings("ignore", message="Overriding existing pre_save_hook", category=UserWarning)
