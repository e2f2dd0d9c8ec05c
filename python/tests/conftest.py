"""Shared pieces of the package's tests: the golden data (data/, written by `mnnvl-ar data`), the CLI
binary, when the test run names one (MNNVL_AR_CLI, set by CTest), and the rendezvous tests' ports and
launcher-free environment."""

import json
import os
import pathlib
import socket

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


# Variables a launcher (or the environment running the tests) may have set: a rank's environment starts
# without them, so only what a test sets decides who the rank is.
LAUNCHER_PREFIXES = ("OMPI_", "PMI_", "MPI_", "SLURM_", "TORCHELASTIC_", "MNNVL_AR_TOKEN")
LAUNCHER_NAMES = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}


_held_ports = []  # sockets that keep the ports free_port gave out until the tests end


def free_port():
    """A loopback port for a rank 0, held by a bound socket that does not listen: rank 0 (which binds with
    SO_REUSEADDR too) can listen there, but no test running beside this one can take it meanwhile, and no
    connection made before rank 0 listens can be given it as its own end."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    _held_ports.append(s)
    return s.getsockname()[1]


@pytest.fixture
def no_launcher(monkeypatch):
    """This process's environment without launcher variables or a token, for the in-process tests."""
    for name in list(os.environ):
        if name in LAUNCHER_NAMES or name.startswith(LAUNCHER_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch
