"""The examples in the pure modules' docstrings are tests too."""

import doctest

import pytest

from fusionrec.agents import profile, ranking, recommend
from fusionrec.encoders import base, hashing


@pytest.mark.parametrize("module", [profile, ranking, recommend, base, hashing], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
