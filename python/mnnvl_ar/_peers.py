"""How the processes of one workspace reach each other before any memory is shared: an all-gather of short
strings and a barrier, over a torch.distributed group or over our Rendezvous. The descriptor exchange
(_handles.py) needs nothing more, so it works the same over either."""


class TorchDistributedPeers:
    """The ranks of a torch.distributed group (None: the default group). torch is imported on first use, so
    this module loads without it."""

    def __init__(self, group=None):
        import torch.distributed as dist

        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def all_gather(self, text):
        """Every rank's `text` (a str), in rank order."""
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, text, group=self.group)
        return out

    def barrier(self):
        self.all_gather("")


class RendezvousPeers:
    """The ranks of a mnnvl_ar.Rendezvous, which carries bytes: the strings travel as UTF-8."""

    def __init__(self, rendezvous):
        self.rendezvous = rendezvous
        self.rank = rendezvous.rank
        self.world_size = rendezvous.world_size

    def all_gather(self, text):
        """Every rank's `text` (a str), in rank order."""
        return [b.decode("utf-8") for b in self.rendezvous.all_gather(text.encode("utf-8"))]

    def barrier(self):
        self.rendezvous.barrier()
