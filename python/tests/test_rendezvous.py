"""mnnvl_ar.Rendezvous between real processes of this machine, and the memory-handle exchange over it, without
torch or a GPU: every rank gets every rank's bytes in rank order; a peer that never comes, a wrong token, no
token and a malformed variable each end in an error that says so, within a bounded time; a waiting call lets
other Python threads run. Each rank is a fresh interpreter (sys.executable -c) with torchrun's variables."""

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest

import mnnvl_ar
from mnnvl_ar._handles import DescriptorExchange
from mnnvl_ar._peers import RendezvousPeers
from conftest import LAUNCHER_NAMES, LAUNCHER_PREFIXES, free_port

TOKEN = secrets.token_hex(16)
# No rank process may take longer than this: past it the test fails as a hang (and the ranks are killed).
PROCESS_LIMIT_S = 60.0
# What a refusal or a timeout of `timeout_s` may take at most, interpreter start on a loaded machine included.
SLACK_S = 20.0



def clean_environment():
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_NAMES and not k.startswith(LAUNCHER_PREFIXES)}


def rank_environment(rank, world, port, token=TOKEN, **extra):
    """torchrun's variables for `rank` of `world`, meeting at 127.0.0.1:`port`, with `token` (None: no token)."""
    env = clean_environment()
    env.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if token is not None:
        env["MNNVL_AR_TOKEN"] = token
    env.update(extra)
    return env


# A rank: joins, gathers twice (values of different lengths, then raw bytes) around a barrier, and prints
# one JSON line: what it got, or the error it raised.
GATHER = """
import json, sys, mnnvl_ar
try:
    with mnnvl_ar.Rendezvous(timeout_s=float(sys.argv[1])) as r:
        words = r.all_gather(f"rank {r.rank} of {r.world_size};".encode() * (r.rank + 1))
        r.barrier()
        raw = r.all_gather(bytes([r.rank, 0, 255]))
        print(json.dumps({"ok": True, "rank": r.rank, "port": r.port, "launcher": r.launcher,
                          "words": [w.decode() for w in words], "raw": [list(b) for b in raw]}))
except Exception as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
"""

# A rank that fails inside its `with` block before gathering: its peers must hear why at once.
FAIL_INSIDE = """
import mnnvl_ar, sys
with mnnvl_ar.Rendezvous(timeout_s=float(sys.argv[1])) as r:
    raise ZeroDivisionError("the model diverged")
"""


def start(script, env, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(processes):
    """Each process's last stdout line as JSON (None where it printed none), once all have ended; a process
    still running after PROCESS_LIMIT_S fails the test, and every process is killed."""
    deadline = time.monotonic() + PROCESS_LIMIT_S
    outputs = []
    try:
        for p in processes:
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a rank process still runs after {PROCESS_LIMIT_S:.0f} s: the rendezvous hangs")
            lines = out.strip().splitlines()
            outputs.append({"json": json.loads(lines[-1]) if lines else None, "stderr": err, "code": p.returncode})
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    return outputs


def results(processes):
    outputs = finish(processes)
    for o in outputs:
        assert o["json"] is not None, f"a rank printed nothing (exit code {o['code']}): {o['stderr']}"
    return [o["json"] for o in outputs]


@pytest.mark.parametrize("world", [2, 3])
def test_every_rank_gets_every_ranks_bytes_in_rank_order(world):
    port = free_port()
    # The last rank first: the others must wait for rank 0 to listen, not fail.
    ranks = [start(GATHER, rank_environment(r, world, port), 20.0) for r in reversed(range(world))]
    got = sorted(results(ranks), key=lambda g: g.get("rank", -1))
    assert all(g["ok"] for g in got), got
    want_words = [f"rank {r} of {world};" * (r + 1) for r in range(world)]
    for r, g in enumerate(got):
        assert g["rank"] == r and g["port"] == port and g["launcher"] == "torchrun"
        assert g["words"] == want_words
        assert g["raw"] == [[q, 0, 255] for q in range(world)]


def test_a_peer_that_never_arrives_is_named_within_the_timeout():
    begun = time.monotonic()
    (alone,) = results([start(GATHER, rank_environment(0, 2, free_port()), 1.0)])
    assert time.monotonic() - begun < 1.0 + SLACK_S
    assert not alone["ok"] and alone["error"] == "RuntimeError"
    assert "rank 0: timed out after 1000 ms waiting for rank 1 to join" in alone["message"]

    (orphan,) = results([start(GATHER, rank_environment(1, 2, free_port()), 1.0)])
    assert not orphan["ok"] and orphan["error"] == "RuntimeError"
    assert "rank 1: timed out after 1000 ms connecting to rank 0" in orphan["message"]


def test_a_wrong_token_is_refused_on_both_sides():
    port = free_port()
    begun = time.monotonic()
    root, intruder = results([start(GATHER, rank_environment(0, 2, port), 3.0),
                              start(GATHER, rank_environment(1, 2, port, token="not the job's token"), 3.0)])
    assert time.monotonic() - begun < 3.0 + SLACK_S
    assert not intruder["ok"] and intruder["error"] == "RuntimeError"
    assert "rank 1: rank 0 at 127.0.0.1" in intruder["message"] and "refused this process" in intruder["message"]
    assert "does not match the job's token" in intruder["message"]
    assert not root["ok"] and root["error"] == "RuntimeError"
    assert "waiting for rank 1 to join" in root["message"] and "1 connection refused" in root["message"]


def test_a_rank_that_fails_in_its_with_block_stops_the_others_at_once():
    port = free_port()
    begun = time.monotonic()
    root, failing = finish([start(GATHER, rank_environment(0, 2, port), 30.0),
                            start(FAIL_INSIDE, rank_environment(1, 2, port), 30.0)])
    assert time.monotonic() - begun < SLACK_S  # well before rank 0's 30 s timeout
    assert failing["code"] != 0 and "ZeroDivisionError: the model diverged" in failing["stderr"]
    assert not root["json"]["ok"] and root["json"]["error"] == "RuntimeError"
    assert "stopped by rank 1" in root["json"]["message"]
    assert "rank 1 stopped: ZeroDivisionError: the model diverged" in root["json"]["message"]


def test_under_torchrun_the_ranks_meet_past_the_agents_port():
    # torchrun's agent serves its store on MASTER_PORT and says so; a listener here stands in for it.
    while True:
        agent = socket.socket()
        agent.bind(("127.0.0.1", 0))
        port = agent.getsockname()[1]
        try:
            free_port_after = socket.socket()
            free_port_after.bind(("127.0.0.1", port + 1))
            free_port_after.close()
            break
        except OSError:
            agent.close()
    agent.listen()
    with agent:
        env = {"TORCHELASTIC_USE_AGENT_STORE": "True"}
        got = results([start(GATHER, rank_environment(r, 2, port, **env), 20.0) for r in range(2)])
    assert all(g["ok"] for g in got), got
    assert [g["port"] for g in got] == [port + 1, port + 1]


def test_no_token_for_two_ranks_is_a_clear_error(no_launcher):
    no_launcher.setenv("RANK", "0")
    no_launcher.setenv("WORLD_SIZE", "2")
    no_launcher.setenv("MASTER_ADDR", "127.0.0.1")
    no_launcher.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(ValueError, match=r"rank 0 of 2 \(torchrun\), but no token is set.*MNNVL_AR_TOKEN"):
        mnnvl_ar.Rendezvous()
    with pytest.raises(ValueError, match="no token is set"):
        mnnvl_ar.Rendezvous(token="")
    missing = "/nonexistent/token"
    no_launcher.setenv("MNNVL_AR_TOKEN_FILE", missing)
    with pytest.raises(ValueError, match=f"MNNVL_AR_TOKEN_FILE={missing}: cannot open token file"):
        mnnvl_ar.Rendezvous()


def test_malformed_variables_and_arguments_are_value_errors(no_launcher):
    no_launcher.setenv("WORLD_SIZE", "2")
    no_launcher.setenv("RANK", "one")
    with pytest.raises(ValueError, match="environment variable RANK='one' is not a valid number"):
        mnnvl_ar.Rendezvous()
    no_launcher.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 is not below WORLD_SIZE=2"):
        mnnvl_ar.Rendezvous()
    no_launcher.setenv("RANK", "1")
    no_launcher.setenv("MASTER_PORT", "port")
    with pytest.raises(ValueError, match="MASTER_PORT='port' is not a valid number"):
        mnnvl_ar.Rendezvous()
    no_launcher.delenv("MASTER_PORT")
    with pytest.raises(ValueError, match="nothing says where rank 0 listens: set MASTER_ADDR and MASTER_PORT"):
        mnnvl_ar.Rendezvous(token=TOKEN)
    with pytest.raises(ValueError, match=r"rank 3 is outside a world of 2 \(ranks are 0 to 1\)"):
        mnnvl_ar.Rendezvous(rank=3)
    with pytest.raises(ValueError, match="port=0 is not a TCP port"):
        mnnvl_ar.Rendezvous(port=0)
    with pytest.raises(ValueError, match="timeout_s=0 must be a positive number"):
        mnnvl_ar.Rendezvous(timeout_s=0)
    with pytest.raises(ValueError, match="must be a positive number"):
        mnnvl_ar.Rendezvous(timeout_s=float("nan"))


def test_a_world_without_a_rank_or_launcher_and_a_nul_address_are_refused(no_launcher):
    # Every such process would be rank 0; the second would fail to listen, far from the cause.
    with pytest.raises(ValueError, match=r"world_size=2 without rank=, and no launcher variable says which rank"):
        mnnvl_ar.Rendezvous(world_size=2, address="127.0.0.1", port=free_port(), token=TOKEN)
    with pytest.raises(ValueError, match="address= holds a NUL character"):
        mnnvl_ar.Rendezvous(rank=0, world_size=2, address="127.0.0.1\x00evil", port=free_port(), token=TOKEN)


def test_a_process_alone_needs_no_launcher_token_or_network(no_launcher):
    with mnnvl_ar.Rendezvous() as r:
        assert (r.rank, r.world_size, r.launcher, r.port) == (0, 1, "single", 0)
        assert r.all_gather(b"mine") == [b"mine"]
        r.barrier()
        with pytest.raises(TypeError):
            r.all_gather("a str, not bytes")
        with pytest.raises(ValueError, match="rank 0 offered 1048577 bytes to all_gather"):
            r.all_gather(bytes(1 << 20 | 1))
        assert "token" not in repr(r) and "Rendezvous(rank=0, world_size=1" in repr(r)
    assert r.closed
    with pytest.raises(RuntimeError, match="rank 0: this Rendezvous is closed"):
        r.all_gather(b"late")
    r.close()  # twice is harmless


def test_a_waiting_rendezvous_lets_other_threads_run(no_launcher):
    outcome = {}

    def wait_for_a_peer_that_never_comes():
        try:
            mnnvl_ar.Rendezvous(rank=0, world_size=2, address="127.0.0.1", port=free_port(), token=TOKEN,
                                timeout_s=2.0)
        except RuntimeError as e:
            outcome["error"] = str(e)

    waiter = threading.Thread(target=wait_for_a_peer_that_never_comes)
    begun = last = time.monotonic()
    waiter.start()
    longest_pause = 0.0
    while waiter.is_alive() and last - begun < SLACK_S:
        now = time.monotonic()
        longest_pause, last = max(longest_pause, now - last), now
    waiter.join(timeout=SLACK_S)
    assert not waiter.is_alive()
    assert "waiting for rank 1 to join" in outcome["error"]
    # Holding the GIL would have stopped this thread for the whole 2 s wait.
    assert longest_pause < 1.0, f"this thread stood still for {longest_pause:.2f} s while the rendezvous waited"


# A rank of the memory-handle exchange: it shares a file that has no name any more, so a peer can read it only
# through the descriptor it receives, and prints what it read through each rank's descriptor.
EXCHANGE = """
import json, os, sys, tempfile
import mnnvl_ar
from mnnvl_ar._handles import DescriptorExchange
from mnnvl_ar._peers import RendezvousPeers
with mnnvl_ar.Rendezvous(timeout_s=20.0) as r:
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    os.write(fd, f"rank {r.rank} wrote this; {sys.argv[1]}".encode())
    exchange = DescriptorExchange(RendezvousPeers(r), timeout_s=20.0)
    try:
        handles = exchange.exchange("POSIX_FILE_DESCRIPTOR", [(r.rank, os.fstat(fd).st_size, fd)])
        read = [os.pread(peer_fd, size, 0).decode() for _, size, peer_fd in handles]
        exchange.barrier()
    finally:
        exchange.close()
        os.close(fd)
    print(json.dumps({"rank": r.rank, "ranks": [h[0] for h in handles], "read": read}))
"""


@pytest.mark.parametrize("world", [2, 3])
def test_descriptors_travel_between_processes_over_the_rendezvous(world):
    port = free_port()
    salts = [secrets.token_hex(4 + r) for r in range(world)]
    got = results([start(EXCHANGE, rank_environment(r, world, port), salts[r]) for r in range(world)])
    want = [f"rank {r} wrote this; {salts[r]}" for r in range(world)]
    for r, g in enumerate(got):
        assert g["rank"] == r and g["ranks"] == list(range(world))
        assert g["read"] == want


def test_the_exchange_refuses_handles_that_cannot_travel(no_launcher):
    with mnnvl_ar.Rendezvous() as r:
        with pytest.raises(RuntimeError, match="handle type FABRIC cannot travel between processes here"):
            DescriptorExchange(RendezvousPeers(r), timeout_s=1.0).exchange("FABRIC", [])
