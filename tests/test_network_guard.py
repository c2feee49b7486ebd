"""Tests must not reach anything beyond loopback."""

import socket

import netguard
import pytest


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.5.0.1", True), ("::1", True), ("localhost", True),
    ("10.0.0.1", False), ("192.0.2.1", False), ("8.8.8.8", False), ("example.com", False),
])
def test_loopback_only(host, allowed):
    assert netguard.is_loopback(host) is allowed


def test_connect_outside_loopback_is_refused_before_any_packet(monkeypatch):
    attempts = []
    monkeypatch.setattr(netguard, "_real_connect", lambda sock, address: attempts.append(address))
    with socket.socket() as sock, pytest.raises(netguard.NetworkBlocked, match="outside loopback"):
        sock.connect(("192.0.2.1", 80))
    assert attempts == []


def test_name_lookup_outside_loopback_is_refused(monkeypatch):
    monkeypatch.setattr(netguard, "_real_getaddrinfo", lambda *a, **k: pytest.fail("a real lookup was attempted"))
    with pytest.raises(netguard.NetworkBlocked, match="name lookup"):
        socket.getaddrinfo("example.com", 443)


_CHILD_PROBE = """
import socket
results = []
for label, attempt in (
    ("tcp", lambda: socket.create_connection(("192.0.2.1", 80), timeout=3)),
    ("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 53))),
    ("dns", lambda: socket.getaddrinfo("pypi.org", 443)),
):
    try:
        attempt()
        results.append(label + ":sent")
    except OSError as exc:
        results.append(label + ":" + type(exc).__name__)
print(" ".join(results))
"""


def test_processes_the_tests_start_cannot_send_anything_beyond_loopback():
    """`make test` runs the suite in a network namespace with loopback only: a child process, which
    the in-process guard does not cover, can neither connect, send a datagram nor resolve a name."""
    import os
    import subprocess
    import sys

    if os.environ.get("PROMPTYARD_TEST_NETNS") != "1":
        pytest.skip("run through `make test` (tests/loopback_only.sh) for the namespace guard")
    out = subprocess.run([sys.executable, "-c", _CHILD_PROBE], capture_output=True, text=True, timeout=30)
    assert "sent" not in out.stdout, out.stdout
    assert out.stdout.split() == ["tcp:OSError", "udp:OSError", "dns:gaierror"], out.stdout + out.stderr


def test_loopback_still_works_for_child_processes():
    import subprocess
    import sys

    code = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "c = socket.create_connection(s.getsockname(), timeout=3); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "ok", out.stderr
