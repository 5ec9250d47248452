# JupyterLab's settings for the course (`make lab` passes this file; so do the browser tests): a lecture opened and
# saved unchanged stays unchanged to git, although its kernel writes the Python version into it.
from mmcourse.dev.notebooks import drop_python_version

c.ContentsManager.pre_save_hook = drop_python_version  # noqa: F821 (c: the config object Jupyter provides)
