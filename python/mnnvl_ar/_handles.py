"""How one rank's process learns its peers' Lamport buffers: each exports its allocation as a POSIX file
descriptor, and descriptors travel between the processes of one host over AF_UNIX sockets (SCM_RIGHTS). The
socket names and a secret come through the peers' all-gather (_peers.py: a torch.distributed group or our
Rendezvous); a connection that does not carry the secret is refused, and a peer that never connects ends the
exchange with an error naming it."""

import os
import secrets
import socket
import time


class DescriptorExchange:
    """exchange() and barrier() as the workspace's C++ side calls them (python/src/gpu_module.cpp). `peers`
    has rank, world_size, all_gather(str) -> [str] in rank order, and barrier() (_peers.py)."""

    def __init__(self, peers, timeout_s):
        self.peers, self.timeout_s = peers, timeout_s
        self.rank, self.world = peers.rank, peers.world_size
        self.received = []  # descriptors kept open until the workspace has imported them

    def barrier(self):
        self.peers.barrier()

    def exchange(self, handle_type, mine):
        if not handle_type.startswith("POSIX"):
            raise RuntimeError(f"handle type {handle_type} cannot travel between processes here")
        names = self.peers.all_gather(secrets.token_hex(8))
        secret = self.peers.all_gather(secrets.token_hex(16))[0]  # rank 0's
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(f"\0mnnvl_ar.{names[self.rank]}".encode())
        server.listen(self.world)
        try:
            self.barrier()  # every rank listens before anyone connects
            for peer in range(self.world):
                if peer == self.rank:
                    continue
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.connect(f"\0mnnvl_ar.{names[peer]}".encode())
                    lines = " ".join(f"{r} {b}" for r, b, _ in mine)
                    socket.send_fds(c, [f"{secret} {self.rank} {lines}".encode()], [fd for _, _, fd in mine])
            handles = {r: (r, b, fd) for r, b, fd in mine}
            deadline = time.monotonic() + self.timeout_s
            while len(handles) < self.world:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [r for r in range(self.world) if r not in handles]
                    raise RuntimeError(f"rank {self.rank}: no memory handle from rank(s) {missing} within "
                                       f"{self.timeout_s:.0f} s")
                server.settimeout(left)
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                with conn:
                    message, fds, _, _ = socket.recv_fds(conn, 4096, 64)
                self.received += fds
                words = message.decode().split()
                if len(words) < 2 or words[0] != secret:
                    raise RuntimeError(f"rank {self.rank}: a connection without the job's secret was refused")
                pairs = words[2:]
                for i, fd in enumerate(fds):
                    r, b = int(pairs[2 * i]), int(pairs[2 * i + 1])
                    handles[r] = (r, b, fd)
            return [handles[r] for r in range(self.world)]
        finally:
            server.close()

    def close(self):
        for fd in self.received:
            os.close(fd)
        self.received = []
