import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((SHARED / "reference" / "problems.json").read_text())
