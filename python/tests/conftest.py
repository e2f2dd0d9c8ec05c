"""Shared pieces of the package's tests: the golden data (data/, written by `mnnvl-ar data`) and the CLI
binary, when the test run names one (MNNVL_AR_CLI, set by CTest)."""

import json
import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "data"


def manifest():
    return json.loads((DATA / "manifest.json").read_text())


def load(entry):
    """A golden file's raw words: bf16 is stored as <u2, fp16 as <f2, fp32 as <f4; the model's words are
    uint16 or uint32."""
    a = np.load(DATA / entry["file"])
    return a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


@pytest.fixture
def cli():
    path = os.environ.get("MNNVL_AR_CLI")
    if not path or not os.path.exists(path):
        pytest.skip("MNNVL_AR_CLI does not name the mnnvl-ar binary (CTest sets it)")
    return path
