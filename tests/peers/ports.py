"""Free loopback ports, and waiting for a server to listen on one."""

import socket
import time
from collections.abc import Callable


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on `host`; free again once this returns.

    Another process may grab it before the caller binds it, but the kernel hands out ephemeral ports in
    rotation, so that race is rare enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are chosen, so none repeats."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_accepts(host: str, port: int, *, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    keep_waiting: Callable[[], bool] = lambda: True,
) -> None:
    """Return once `host:port` accepts a TCP connection.

    Raises TimeoutError after `timeout` seconds, or RuntimeError as soon as `keep_waiting()` is false (for
    instance when the server process has already exited, so waiting longer cannot help).
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_accepts(host, port, timeout=min(0.5, timeout)):
            return
        if not keep_waiting():
            raise RuntimeError(f"gave up waiting for {host}:{port}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:.1f} s")
        time.sleep(interval)
