"""Is Kafka answering? A stdlib Metadata request over the Kafka wire protocol."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import struct

from stack_settings import HOST


def _kafka_string(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, offset)
    offset += 2
    if length < 0:
        return None, offset
    return data[offset : offset + length].decode("utf-8", "replace"), offset + length


def kafka_metadata_brokers(
    port: int, timeout: float = 2.0, ssl_context: ssl.SSLContext | None = None
) -> list[tuple[int, str, int]]:
    """Ask 127.0.0.1:port for cluster metadata (Metadata v4, no topics); return its brokers.

    Request header v1: api_key, api_version, correlation_id, client_id. Body v4: topics = null
    (int32 -1), allow_auto_topic_creation = false. Response: correlation_id, throttle_time_ms,
    brokers [node_id, host, port, rack], ... (the rest is not needed). With `ssl_context` it
    talks to an SSL listener (tests use that to prove the certificate rules).
    """
    correlation_id = secrets.randbelow(2**31)
    client_id = b"metrictui-stack"
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    request = header + struct.pack(">ib", -1, 0)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((HOST, port), timeout=timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=HOST))
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 0 < size < 16 * 1024 * 1024:
            raise ValueError(f"implausible Metadata response size {size}")
        data = _recv_exact(sock, size)
    got_id, _throttle, count = struct.unpack_from(">iii", data, 0)
    if got_id != correlation_id:
        raise ValueError("Metadata response for another request")
    offset = 12
    brokers = []
    for _ in range(max(count, 0)):
        (node_id,) = struct.unpack_from(">i", data, offset)
        host, offset = _kafka_string(data, offset + 4)
        (broker_port,) = struct.unpack_from(">i", data, offset)
        _rack, offset = _kafka_string(data, offset + 4)
        brokers.append((node_id, host or "", broker_port))
    return brokers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def kafka_ready(port: int) -> bool:
    try:
        return len(kafka_metadata_brokers(port)) >= 1
    except (OSError, ValueError, struct.error):
        return False
