"""Offline evaluation: replay real interaction logs in time order through the streaming engine and
baselines (``fusionrec evaluate``)."""

from .datasets import Dataset, Event, load_dataset
from .metrics import Estimate
from .protocols import Split, global_split, prequential, temporal_split
from .run import EvalConfig, Evaluation, evaluate

__all__ = [
    "Dataset", "Estimate", "EvalConfig", "Evaluation", "Event", "Split", "evaluate", "global_split", "load_dataset",
    "prequential", "temporal_split",
]
