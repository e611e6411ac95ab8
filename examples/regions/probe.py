#!/usr/bin/env python3
"""What a pod sees: resolve names in a loop through the C library, as applications in pods do.

getaddrinfo() follows the pod's /etc/resolv.conf (search path, ndots:5, glibc's 5 s timeout and
two attempts), so each line is one lookup an application would have made, with how long it took
and what came back.

usage: probe.py INTERVAL_MS NAME... (runs until killed; one line per lookup on stdout:
       "<epoch ms> <duration ms> <name> OK <ip,ip...>" or "... FAIL <error>")
"""

import socket
import sys
import time


def main() -> None:
    interval = int(sys.argv[1]) / 1000.0
    names = sys.argv[2:]
    i = 0
    while True:
        name = names[i % len(names)]
        i += 1
        start = time.time()
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
            result = "OK " + ",".join(sorted({info[4][0] for info in infos}))
        except socket.gaierror as e:
            result = f"FAIL {e.strerror.replace(' ', '_')}"
        took = time.time() - start
        print(f"{int(start * 1000)} {int(took * 1000)} {name} {result}", flush=True)
        time.sleep(max(0.0, interval - took))


if __name__ == "__main__":
    main()
