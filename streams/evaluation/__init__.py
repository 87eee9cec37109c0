"""Offline evaluation: replay real interaction logs in time order through the streaming engine and
baselines (``fusionrec evaluate``)."""

from fusionrec.streams.evaluation.datasets import Dataset, Event, load_dataset
from fusionrec.streams.evaluation.metrics import Estimate
from fusionrec.streams.evaluation.protocols import Split, global_split, prequential, temporal_split
from fusionrec.streams.evaluation.run import EvalConfig, Evaluation, evaluate

__all__ = [
    "Dataset", "Estimate", "EvalConfig", "Evaluation", "Event", "Split", "evaluate", "global_split", "load_dataset",
    "prequential", "temporal_split",
]
