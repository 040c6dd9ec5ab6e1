import sys
from pathlib import Path

# Tests import the library from the source tree even without an editable install.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


import locale

import pytest


_START_LOCALE = locale.setlocale(locale.LC_ALL)


@pytest.fixture(autouse=True)
def _restore_locale():
    """Writing the DSB DICOM fixtures (GDCM via SimpleITK) resets the process locale to "C";
    restore the start-up locale around every test so one test cannot change another's
    text encoding (module-scoped fixtures run before this one, hence restore on entry too)."""
    locale.setlocale(locale.LC_ALL, _START_LOCALE)
    yield
    locale.setlocale(locale.LC_ALL, _START_LOCALE)
