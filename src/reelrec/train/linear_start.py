"""Start a task's wide biases from a logistic regression fitted to convergence.

The wide part of the ranker (`Ranker.wide`: one bias per task for each user, video, author
and field value) is a logistic regression over one-hot ids. Trained by row-wise Adagrad
with the other tasks, a rare label's biases barely move: each row has one accumulator, and
the common labels' gradients fill it. After the warm-up, the wide part alone scores
KuaiRand's is_like at AUC .743, where the same model fitted to convergence reaches .778.

`linear_start` fits that model exactly: scikit-learn's liblinear, L2 with strength `1 / c`,
over the wide part's own ids. It writes `scale` times the weights into the wide tables'
column of each chosen task, and as much of the intercept into that task's tower bias. The
warm-up and the joint training then go on from there: the deep part learns what the biases
leave, and the biases keep learning.

Which scale (`--linear-start is_like=0.75,is_follow`: 0.75 and 0.5), and which tasks. On
KuaiRand, against no linear start, paired by seed, on the test window (20 seeds) and on a
validation split (12 seeds; trained to 2022-04-30, scored on 2022-05-01):

    is_like, scale 1.0:     is_like GAUC +.0091 / +.0229, is_like AUC -.0172 / -.0209,
                            is_follow AUC -.052 / -.073
    is_like, scale 0.5:     is_like GAUC +.0050 / +.0047, AUC -.0028 / +.0010,
                            is_follow AUC -.026 / -.046
    is_like and is_follow,  is_like GAUC +.0031 / +.0049, AUC -.0027 / -.0010,
    scale 0.5:              is_follow AUC +.105 / +.086

    is_like 0.75 and        is_like GAUC +.0034 / +.0093, AUC -.0054 / -.0104
    is_follow 0.5 (against the row above)

The full regression ranks each user's videos better (GAUC) but lowers AUC across users by
about .02, almost all of it in the users' levels, not in the order within each user. A
like start alone costs is_follow, which shares the experts; starting both rare tasks lifts
is_follow AUC from .66 to .77. long_view and is_click move by at most .0007. Through
`reelrec train`, 16 seeds each, paired by seed: both tasks at 0.5 against no start,
is_follow AUC +.1010 +- .0029 (16/16), is_like GAUC +.0010 +- .0013 (within noise); then
is_like at 0.75 against 0.5, is_like GAUC .6570 -> .6604 (+.0035 +- .0017), AUC .8117 ->
.8066 (-.0052 +- .0005), is_follow AUC -.0012 +- .0010.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sps
import torch

from reelrec.errors import ConfigError
from reelrec.features import FeatureFrame
from reelrec.models.ranker import WIDE_INPUTS, Ranker


def wide_design(frame: FeatureFrame) -> tuple[sps.csr_matrix, dict[str, np.ndarray]]:
    """The one-hot matrix (N, V) of the wide part's ids, and per table the ids of its
    columns, in column order."""
    blocks, ids = [], {}
    for table, feature in WIDE_INPUTS.items():
        values = np.asarray(getattr(frame, feature)).reshape(len(frame), -1)  # (N, k)
        uniq, col = np.unique(values, return_inverse=True)
        n, k = values.shape
        rows = np.repeat(np.arange(n), k)
        blocks.append(sps.csr_matrix((np.ones(n * k), (rows, col.ravel())), (n, uniq.size)))
        ids[table] = uniq
    return sps.hstack(blocks, format="csr"), ids


def linear_start(model: Ranker, train: FeatureFrame, scales: Mapping[str, float], c: float) -> None:
    """Fit each named task's logistic regression on `train`; load its scale times the fit
    into the wide part."""
    if not scales:
        return
    unknown = sorted(set(scales) - set(model.config.tasks))
    if unknown:
        raise ConfigError(
            f"--linear-start: unknown task(s) {unknown}; the tasks are {model.config.tasks}"
        )
    assert train.labels is not None
    # scikit-learn takes ~0.9 s to import: only `train --linear-start` pays it, not every
    # command that imports the training loop (evaluate, online, demo)
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    x, ids = wide_design(train)
    model.train()  # the tables admit the ids they are given
    for task, scale in scales.items():
        t = model.config.tasks.index(task)
        y = train.labels[:, t]
        if np.unique(y).size < 2:  # one class only: no regression to fit, the biases stay
            continue
        fit = LogisticRegression(C=c, solver="liblinear", max_iter=300)
        with warnings.catch_warnings():  # liblinear's note when max_iter ends the fit
            warnings.simplefilter("ignore")
            fit.fit(x, y)
        weights = np.split(scale * fit.coef_[0], np.cumsum([v.size for v in ids.values()])[:-1])
        for (table_name, table_ids), w in zip(ids.items(), weights, strict=True):
            table = model.embeddings.tables[table_name]
            rows = table.weights_of(table_ids)
            rows[:, t] = torch.from_numpy(w).to(rows)
            table.assign(table_ids, rows)
        tower = model.towers[t]
        assert isinstance(tower, torch.nn.Sequential) and isinstance(tower[-1], torch.nn.Linear)
        with torch.no_grad():
            tower[-1].bias.add_(scale * float(fit.intercept_[0]))
