"""The rendezvous with torch: a workspace with neither a torch.distributed group nor a launcher says how to get
either, and torch.distributed's peers gather strings. A file of its own, skipped as a whole without torch (CTest
reports a file skipped only when all of it is)."""

import pytest

from conftest import free_port

torch = pytest.importorskip("torch")


def test_a_workspace_with_no_group_and_no_launcher_says_both_ways(no_launcher):
    from mnnvl_ar import gpu

    with pytest.raises(ValueError, match="init_process_group first.*torchrun.*MNNVL_AR_TOKEN.*no launcher variables"):
        gpu.Workspace()
    no_launcher.setenv("RANK", "0")
    no_launcher.setenv("WORLD_SIZE", "2")
    no_launcher.setenv("MASTER_ADDR", "127.0.0.1")
    no_launcher.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(ValueError, match="init_process_group first.*does not describe a rendezvous.*no token is set"):
        gpu.Workspace()


def test_the_torch_distributed_peers_gather_strings(no_launcher):
    import torch.distributed as dist
    from mnnvl_ar._peers import TorchDistributedPeers

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        peers = TorchDistributedPeers()
        assert (peers.rank, peers.world_size) == (0, 1)
        assert peers.all_gather("mnnvl_ar.1f2e") == ["mnnvl_ar.1f2e"]
        peers.barrier()
    finally:
        dist.destroy_process_group()
