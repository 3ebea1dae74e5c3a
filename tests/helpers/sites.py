"""Local web servers, normal and hostile, plus a generated CA, for tests that check websites.

Everything listens on 127.0.0.1 ephemeral ports and runs on its own event loop in a background
thread, so the servers work the same whatever event loop (and loop scope) the test uses, and a
test client that misbehaves cannot stall them (nor they the client's loop).

    with LocalSites(tmp_path) as sites:
        target = Target(name="home", url=sites.http_url("/"), regex="all good")
        https = Target(name="tls", url=sites.https_url("/"), ca_file=str(sites.ca_file))

Routes served on every HTTP(S) listener (see `LocalSites` for the listeners):

    /                   200, `NORMAL_BODY` (text/html)
    /status/{code}      that status code, short text body
    /redirect/{n}       n 302 redirects, then `/`
    /redirect-loop      302 to itself, forever
    /bytes/{n}          n bytes of "x" (Content-Length); `?chunked=1` sends it chunked instead
    /a-run/{n}          n times "a" followed by "!" (feeds backtracking regexes like `(a+)+$`)
    /sleep/{seconds}    waits, then 200 `NORMAL_BODY` (headers are late, not the body)
    /endless            200, then 64 KiB chunks forever (chunked, no Content-Length)
    /drip               200, then one byte per second, forever
    /headers            the request headers as JSON (for tests of configured headers)
    /method             the request's method as text (any method)
    /see-other          303 to /method (any method)
    /gzip               `NORMAL_BODY`, gzip-compressed, with Content-Encoding: gzip

A raw TCP listener answers every request with a canned, hand-written reply chosen by the
request's path (`scripted_url(name)`, names in `SCRIPTS`): HTTP/1.0 bodies that end with the
connection, interim 1xx responses, headers that never end, bodies cut short.

Pytest: `local_sites` below is a session-scoped fixture; a conftest can register it with
`from sites import local_sites  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import ipaddress
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "GARBAGE",
    "NORMAL_BODY",
    "SCRIPTS",
    "LocalCA",
    "LocalSites",
    "local_sites",
    "self_signed_cert",
]

NORMAL_BODY = (
    "<!doctype html><html><head><title>metrictui test page</title></head>"
    "<body><h1>metrictui test page</h1><p>status: all good</p></body></html>"
)
"""Body of `/`; contains "all good" for content-regex tests."""

GARBAGE = b"SSH-2.0-OpenSSH_9.6 \x00\xff\xfe not http at all\r\n\x01\x02\x03\r\n\r\n"
"""What the non-HTTP service sends to every client before closing."""

SCRIPTS: dict[str, bytes] = {
    "until-close": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstatus: all good",
    "interim": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nstatus: all good"
    ),
    "cut-short": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly a little",
    "header-flood": b"HTTP/1.1 200 OK\r\n" + b"X-Flood: " + b"a" * 200_000 + b"\r\n\r\n",
    "bad-gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
    ),
}
"""Canned replies of the scripted listener, by name (the request path without its slash)."""

_STARTUP_TIMEOUT_S = 10.0
_CHUNK = b"x" * 65536


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _server_extensions(
    builder: x509.CertificateBuilder,
    key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...],
    ips: tuple[str, ...],
) -> x509.CertificateBuilder:
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return (
        builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


class LocalCA:
    """A throwaway certificate authority; its certificate is written to `ca_file` (ca.pem)."""

    def __init__(self, directory: Path, common_name: str = "metrictui test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        _write_cert(self.cert, self.ca_file)

    def issue(
        self,
        stem: str,
        *,
        names: tuple[str, ...] = ("localhost",),
        ips: tuple[str, ...] = ("127.0.0.1",),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> tuple[Path, Path, x509.Certificate]:
        """Issue a server certificate; writes `<stem>.pem` and `<stem>.key` next to ca.pem.

        Defaults: valid from yesterday for 90 days, for localhost and 127.0.0.1.
        Returns (cert path, key path, certificate).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=90))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        cert = _server_extensions(builder, key, names, ips).sign(self.key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        _write_cert(cert, cert_path)
        _write_key(key, key_path)
        return cert_path, key_path, cert


def self_signed_cert(
    directory: Path,
    stem: str = "self-signed",
    *,
    names: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed server certificate (no CA will trust it); returns (cert, key, cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    cert = _server_extensions(builder, key, names, ips).sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    _write_cert(cert, cert_path)
    _write_key(key, key_path)
    return cert_path, key_path, cert


def _server_tls(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


class LocalSites:
    """All test servers, started together in one background thread.

    Listeners (each on its own 127.0.0.1 port):
      - plain HTTP (`http_url`)
      - HTTPS with a certificate issued by `ca` for localhost/127.0.0.1 (`https_url`; trust it
        with `ca_file`); its expiry is `https_cert_expires_at`
      - HTTPS with a self-signed certificate (`self_signed_url`)
      - HTTPS with an expired certificate issued by `ca` (`expired_url`)
      - a non-HTTP TCP service that sends `GARBAGE` and closes (`garbage_url`)
      - a TCP service that accepts and never answers (`silent_url`)
      - a port that refuses connections: bound, never listening (`refused_url`)

    `hits[path]` counts requests per HTTP path across the HTTP(S) listeners.
    """

    __test__ = False  # not a test class, whatever module imports it

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = LocalCA(directory)
        self.ca_file = self.ca.ca_file
        good_cert, good_key, good = self.ca.issue("localhost")
        self.https_cert_expires_at = good.not_valid_after_utc
        now = _now()
        expired_cert, expired_key, _ = self.ca.issue(
            "expired",
            not_before=now - dt.timedelta(days=60),
            not_after=now - dt.timedelta(days=1),
        )
        self_cert, self_key, _ = self_signed_cert(directory)
        self._tls = {
            "https": _server_tls(good_cert, good_key),
            "self_signed": _server_tls(self_cert, self_key),
            "expired": _server_tls(expired_cert, expired_key),
        }
        self.hits: Counter[str] = Counter()
        self._ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tcp_servers: list[asyncio.Server] = []
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._refusing: socket.socket | None = None

    # -- URLs ---------------------------------------------------------------------------------

    def http_url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        """URL on the plain HTTP listener; pass host="localhost" to make the check resolve DNS."""
        return f"http://{host}:{self._ports['http']}{path}"

    def https_url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        """URL on the HTTPS listener whose certificate `ca_file` trusts."""
        return f"https://{host}:{self._ports['https']}{path}"

    def self_signed_url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self._ports['self_signed']}{path}"

    def expired_url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self._ports['expired']}{path}"

    @property
    def garbage_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['garbage']}/"

    @property
    def silent_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['silent']}/"

    def scripted_url(self, name: str) -> str:
        """URL whose answer is `SCRIPTS[name]`, written as is, then the connection closed."""
        assert name in SCRIPTS, name
        return f"http://127.0.0.1:{self._ports['scripted']}/{name}"

    @property
    def refused_url(self) -> str:
        return f"http://127.0.0.1:{self._ports['refused']}/"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalSites:
        """Start every listener; returns when all of them accept connections."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="metrictui-test-sites", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(_STARTUP_TIMEOUT_S)
        refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        refusing.bind(("127.0.0.1", 0))  # bound but never listening: connects get RST
        self._refusing = refusing
        self._ports["refused"] = _port(refusing)
        return self

    def stop(self) -> None:
        """Stop every listener and the thread; open client connections are cut."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(_STARTUP_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(_STARTUP_TIMEOUT_S)
        if not loop.is_running():
            loop.close()
        if self._refusing is not None:
            self._refusing.close()

    def __enter__(self) -> LocalSites:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self._app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        for name, tls in [("http", None), *self._tls.items()]:
            sock = _listening_socket()
            self._ports[name] = _port(sock)
            await web.SockSite(self._runner, sock, ssl_context=tls).start()
        for name, handler in (
            ("garbage", self._garbage),
            ("silent", self._silent),
            ("scripted", self._scripted),
        ):
            sock = _listening_socket()
            self._ports[name] = _port(sock)
            self._tcp_servers.append(await asyncio.start_server(handler, sock=sock))

    async def _stop(self) -> None:
        for server in self._tcp_servers:
            server.close()
        for writer in list(self._tcp_writers):
            writer.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- raw TCP services ---------------------------------------------------------------------

    async def _garbage(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            writer.write(GARBAGE)
            await writer.drain()
            await asyncio.sleep(0.05)  # let the client read before the close
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._tcp_writers.discard(writer)

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            while await reader.read(65536):
                pass  # swallow the request, never answer; return when the client hangs up
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._tcp_writers.discard(writer)

    async def _scripted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            writer.write(SCRIPTS.get(path.lstrip("/"), b"HTTP/1.1 404 Not Found\r\n\r\n"))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            pass
        finally:
            writer.close()
            self._tcp_writers.discard(writer)

    # -- HTTP routes --------------------------------------------------------------------------

    def _app(self) -> web.Application:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.hits[request.path] += 1
            return await handler(request)

        app = web.Application(middlewares=[count])
        app.router.add_route("*", "/", _home)
        app.router.add_get("/status/{code:\\d+}", _status)
        app.router.add_get("/redirect/{n:\\d+}", _redirect_n)
        app.router.add_get("/redirect-loop", _redirect_loop)
        app.router.add_get("/bytes/{n:\\d+}", _bytes)
        app.router.add_get("/a-run/{n:\\d+}", _a_run)
        app.router.add_get("/sleep/{seconds:[0-9.]+}", _sleep)
        app.router.add_get("/endless", _endless)
        app.router.add_get("/drip", _drip)
        app.router.add_get("/headers", _headers)
        app.router.add_route("*", "/method", _method)
        app.router.add_route("*", "/see-other", _see_other)
        app.router.add_get("/gzip", _gzip)
        return app


async def _home(request: web.Request) -> web.Response:
    return web.Response(text=NORMAL_BODY, content_type="text/html")


async def _status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"status {code}\n")


async def _redirect_n(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    location = "/" if n <= 1 else f"/redirect/{n - 1}"
    raise web.HTTPFound(location)


async def _redirect_loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/redirect-loop")


async def _bytes(request: web.Request) -> web.StreamResponse:
    n = int(request.match_info["n"])
    if request.query.get("chunked") != "1":
        return web.Response(body=b"x" * n, content_type="application/octet-stream")
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for offset in range(0, n, len(_CHUNK)):
        await response.write(_CHUNK[: min(len(_CHUNK), n - offset)])
    await response.write_eof()
    return response


async def _a_run(request: web.Request) -> web.Response:
    return web.Response(text="a" * int(request.match_info["n"]) + "!")


async def _sleep(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.match_info["seconds"]))
    return web.Response(text=NORMAL_BODY, content_type="text/html")


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client hung up
        while True:
            await response.write(_CHUNK)
    return response


async def _drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client hung up
        while True:
            await response.write(b".")
            await asyncio.sleep(1.0)
    return response


async def _headers(request: web.Request) -> web.Response:
    return web.json_response(dict(request.headers))


async def _method(request: web.Request) -> web.Response:
    return web.Response(text=request.method)


async def _see_other(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/method")


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(NORMAL_BODY.encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/html"},
    )


@pytest.fixture(scope="session")
def local_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSites]:
    """All local test servers for the whole session (see `LocalSites`)."""
    with LocalSites(tmp_path_factory.mktemp("sites")) as sites:
        yield sites
