"""Fit the learned load predictor on the evaluation's tune windows and write its model file.

    python scripts/train_predictor.py

Deterministic: the same committed windows (adapter/data/workloads/drawn, split "tune") give the
same adapter/data/predictors/learned.json; tests/adapter/test_predict.py checks that the
committed file is what this makes. The test windows are never read into the fit.
"""

from __future__ import annotations

import json
import sys

from adapter.predict import LEARNED_MODEL_PATH
from adapter.sim.learned import train
from adapter.sim.trace import evaluation_windows


def main() -> int:
    model = train(evaluation_windows())
    LEARNED_MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    LEARNED_MODEL_PATH.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
    print(f"{LEARNED_MODEL_PATH}: {model.examples} examples from {', '.join(model.training_windows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
