import sys
from pathlib import Path

# Tests import the library from the source tree even without an editable install.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
