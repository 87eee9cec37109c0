"""The examples in the pure modules' docstrings are tests too."""

import doctest

import pytest

from fusionrec.agents import emission, encode_items, profile, ranking, recommend, stats
from fusionrec.encoders import base, fusion, hashing
from fusionrec.encoders.media import audio, color, fetch, video
from fusionrec.encoders.media import base as media_base
from fusionrec.schemas import events
from fusionrec.streams.embedded import stack
from fusionrec.streams.index import milvus

MODULES = [profile, ranking, recommend, stats, emission, encode_items, base, hashing, fusion, media_base, audio, video, color,
           fetch, events, milvus, stack]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
