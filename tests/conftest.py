import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
# A missed bar fails the run under the tests (the notebooks' kernels inherit this); a learner's session warns.
os.environ.setdefault("MMCOURSE_STRICT", "1")
