"""Scores cases with pysaliency itself; run by test_metrics_vs_pysaliency.py in pysaliency's own venv.

Usage: python pysaliency_reference.py CASES.npz  (prints one JSON list of scores per case)
       python pysaliency_reference.py --shuffled IMAGES.npz  (prints the sAUC of each image)

Each case i in the npz holds pred_i, gt_i (2-D maps) and x_i, y_i (fixations); with --shuffled,
image i of one set of same-sized stimuli holds pred_i, x_i and y_i, and each image's negatives
are every other image's fixations (pysaliency's nonfixations="shuffled"). Runs in a
separate interpreter because pysaliency needs numpy < 2.4 (it calls np.trapz); it imports
nothing from saldata.
"""

import json
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # pysaliency's own deprecation chatter would drown the JSON's errors
import pysaliency  # noqa: E402
from pysaliency.metrics import MIT_KLDiv  # noqa: E402


class ArrayModel(pysaliency.SaliencyMapModel):
    """Serves a fixed map per stimulus; the stimulus' pixel value is the case index."""

    def __init__(self, maps):
        super().__init__(caching=False)
        self.maps = maps

    def _saliency_map(self, stimulus):
        return self.maps[int(stimulus[0, 0, 0])]


def score(index, pred, gt, x, y):
    stimuli = pysaliency.Stimuli([np.full((*pred.shape, 3), index, dtype=np.uint8)])
    fixations = pysaliency.Fixations.create_without_history(x, y, np.zeros(len(x), dtype=int))
    model = ArrayModel({index: pred})
    truth = ArrayModel({index: gt})
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "nss": float(model.NSS(stimuli, fixations, average="fixation")),
            "auc_uniform_all": float(
                model.AUC(stimuli, fixations, nonfixations="uniform", thresholds="all", average="image")
            ),
            "auc_judd_method": float(model.AUC_Judd(stimuli, fixations, jitter=False)),
            "cc": float(model.CCs(stimuli, truth)[0]),
            "kld": float(MIT_KLDiv(pred, gt)),
            "sim": float(model.SIMs(stimuli, truth)[0]),
        }


def shuffled(path):
    """sAUC per image: pysaliency's per-fixation sAUCs, averaged over each image's fixations."""
    data = np.load(path)
    count = len([k for k in data.files if k.startswith("pred_")])
    maps = {i: data[f"pred_{i}"] for i in range(count)}
    stimuli = pysaliency.Stimuli([np.full((*maps[i].shape, 3), i, dtype=np.uint8) for i in range(count)])
    xs = [data[f"x_{i}"] for i in range(count)]
    ys = [data[f"y_{i}"] for i in range(count)]
    ns = np.concatenate([np.full(len(x), i) for i, x in enumerate(xs)])
    fixations = pysaliency.Fixations.create_without_history(np.concatenate(xs), np.concatenate(ys), ns)
    per_fixation = ArrayModel(maps).sAUCs(stimuli, fixations)
    print(json.dumps([float(per_fixation[ns == i].mean()) for i in range(count)]))


def main(path):
    data = np.load(path)
    count = len([k for k in data.files if k.startswith("pred_")])
    cases = [(i, data[f"pred_{i}"], data[f"gt_{i}"], data[f"x_{i}"], data[f"y_{i}"]) for i in range(count)]
    print(json.dumps([score(*case) for case in cases]))


if __name__ == "__main__":
    if sys.argv[1] == "--shuffled":
        shuffled(sys.argv[2])
    else:
        main(sys.argv[1])
