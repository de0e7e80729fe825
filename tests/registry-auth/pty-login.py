#!/usr/bin/python3
"""Runs `kiln login REGISTRY` on a pseudo-terminal, answers the Username and Password prompts,
and prints everything the terminal showed, then "EXIT <status>". Usage: pty-login.py USER PASS
KILN ARGS..."""
import os
import pty
import select
import sys
import time


def read_until(fd, marker, deadline):
    out = b""
    while marker not in out:
        if time.time() > deadline:
            raise SystemExit("timeout waiting for %r; got %r" % (marker, out))
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def main():
    user, password, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    deadline = time.time() + 30
    seen = read_until(fd, b"Username: ", deadline)
    os.write(fd, user.encode() + b"\n")
    seen += read_until(fd, b"Password: ", deadline)
    time.sleep(0.2)
    os.write(fd, password.encode() + b"\n")
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(seen.decode(errors="replace"))
    print("\nEXIT %d" % os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
