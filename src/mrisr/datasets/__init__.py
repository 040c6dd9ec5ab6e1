"""Built-in data generators, real-format readers, prepare and split."""

from mrisr.datasets.base import Reader, Series
from mrisr.datasets.prepare import prepare_subject
from mrisr.datasets.readers import get_reader
from mrisr.datasets.split import make_split
from mrisr.datasets.synth import write_synth

__all__ = ["Reader", "Series", "get_reader", "make_split", "prepare_subject", "write_synth"]
