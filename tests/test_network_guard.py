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
