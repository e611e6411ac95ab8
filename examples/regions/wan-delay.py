#!/usr/bin/env python3
"""Hold every packet the kernel routes into a TUN device for a fixed time, then hand it back.

The stand-in for `tc qdisc ... netem delay` on kernels built without sch_netem: run.sh routes
every packet that enters the WAN namespace from a region into this device once (policy routing
on the incoming link), and the kernel routes it on to its destination region when it comes back.

usage: wan-delay.py DEVICE DELAY_MS
"""

import collections
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# netem's default queue limit is 1000 packets; beyond this one, packets are dropped as a full
# link would drop them.
LIMIT = 10000


def main() -> None:
    name, delay_ms = sys.argv[1], int(sys.argv[2])
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    delay = delay_ms / 1000.0
    queue: collections.deque = collections.deque()
    dropped = 0
    print(f"delaying packets through {name} by {delay_ms} ms", flush=True)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([fd], [], [], timeout)
        if readable:
            arrived = time.monotonic()
            while True:
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    break
                if len(queue) >= LIMIT:
                    dropped += 1
                    if dropped % 1000 == 1:
                        print(f"queue full: {dropped} packets dropped", flush=True)
                    continue
                queue.append((arrived + delay, packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            try:
                os.write(fd, queue.popleft()[1])
            except OSError as e:  # e.g. the device went down; the packet is lost, as on a link
                print(f"write failed: {e}", flush=True)


if __name__ == "__main__":
    main()
