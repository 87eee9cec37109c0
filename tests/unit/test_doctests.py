"""The examples in the pure modules' docstrings are tests too."""

import doctest

import pytest

from fusionrec.agents import emission, encode_items, profile, ranking, recommend, stats
from fusionrec.encoders import base, fusion, hashing, media
from fusionrec.encoders.media import color
from fusionrec.schemas import events
from fusionrec.streams import index
from fusionrec.streams.embedded import stack as embedded
from fusionrec.encoders.media import fetch as fetching


@pytest.mark.parametrize("module", [profile, ranking, recommend, stats, emission, encode_items, base, hashing, fusion, media, color, fetching,
                                    events, index, embedded], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
