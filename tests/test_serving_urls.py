"""The URL guard: refused addresses, redirects, byte and time caps, connecting to the checked IP."""

from __future__ import annotations

import datetime
import io
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from deitkit.errors import ImageError
from deitkit.serving.limits import ServingLimits
from deitkit.serving.urls import (
    UrlFetcher,
    blocked_reason,
    refuse_url,
    resolve_host,
    url_fetcher,
)

LOOPBACK = IPv4Address("127.0.0.1")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Every socket these tests open must go to 127.0.0.1: any other connect fails the test."""
    connect = socket.socket.connect
    attempts: list[object] = []

    def guarded(sock, address):
        attempts.append(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
            raise AssertionError(f"a test tried to connect to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        path = self.path
        if path == "/image.png":
            self._send(200, PNG)
        elif path == "/host":
            self._send(200, self.headers["Host"].encode())
        elif path.startswith("/hops/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/hops/{left - 1}" if left > 1 else "/image.png")
        elif path.startswith("/to/"):
            self._redirect(unquote(path[len("/to/") :]))
        elif path == "/no-location":
            self._send(302, b"")
        elif path == "/missing":
            self._send(404, b"not here")
        elif path == "/big":
            self._send(200, b"x" * 5000)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        else:
            self._send(500, b"unexpected path")

    def _send(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture(scope="module")
def http_port():
    server = _serve()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def loopback_allowed(address):
    """The production rule, except that this test server's address is allowed."""
    return None if address == LOOPBACK else blocked_reason(address)


def fetcher(**options) -> UrlFetcher:
    options.setdefault("check", loopback_allowed)
    return UrlFetcher(**options)


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # Python counts 240/4 (reserved) as private too
        ("100.64.0.1", "not a public internet address"),  # carrier-grade NAT
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address, why):
    reason = blocked_reason(ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert blocked_reason(ip_address(address)) is None


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://127.0.0.1/x.png", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/x.png", "127.0.0.1 is a loopback address"),
        ("http://2130706433/x.png", "127.0.0.1 is a loopback address"),  # 127.0.0.1 as a number
        ("http://0x7f.1/x.png", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/x.png", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[::1]:5000/", "::1 is a loopback address"),
    ],
)
def test_the_production_guard_refuses_before_connecting(url, why, loopback_only):
    with pytest.raises(ImageError, match="refused") as info:
        UrlFetcher()(url)
    assert why in str(info.value) and "only public internet addresses" in str(info.value)
    assert loopback_only == []  # refused before any socket was opened


def test_a_name_is_refused_if_any_of_its_addresses_is_private(loopback_only):
    resolve = lambda host, port: [ip_address("93.184.216.34"), ip_address("10.1.2.3")]  # noqa: E731
    with pytest.raises(ImageError, match=r"10\.1\.2\.3 is a private address"):
        UrlFetcher(resolve=resolve)("http://images.example.test/a.png")
    assert loopback_only == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/a.png", "ftp URLs are not fetched"),
        ("file:///etc/passwd", "file URLs are not fetched"),
        ("http://user:secret@example.com/a.png", "user name or password"),
        ("http:///a.png", "names no host"),
        ("http://example.com:99999/a.png", "not a valid URL"),
    ],
)
def test_malformed_and_other_scheme_urls_are_refused(url, message, loopback_only):
    with pytest.raises(ImageError, match=message):
        UrlFetcher()(url)
    assert loopback_only == []


def test_an_allowed_url_is_fetched(http_port):
    assert fetcher()(f"http://127.0.0.1:{http_port}/image.png") == PNG


def test_the_connection_goes_to_the_checked_address_with_the_original_host(http_port):
    resolved: list[str] = []

    def resolve(host, port):
        resolved.append(host)
        return [LOOPBACK]

    body = fetcher(resolve=resolve)(f"http://images.example.test:{http_port}/host")
    assert body == f"images.example.test:{http_port}".encode()
    assert resolved == ["images.example.test"]  # resolved once, then that address is used


def test_redirects_are_followed_up_to_the_limit(http_port):
    assert fetcher()(f"http://127.0.0.1:{http_port}/hops/3") == PNG
    with pytest.raises(ImageError, match="more than 3 redirects"):
        fetcher()(f"http://127.0.0.1:{http_port}/hops/4")


@pytest.mark.parametrize(
    "location, why",
    [
        ("http://10.0.0.1/a.png", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::ffff:192.168.0.1]/", "private"),
        ("file:///etc/passwd", "file URLs are not fetched"),
    ],
)
def test_every_redirect_is_checked_again(http_port, location, why, loopback_only):
    with pytest.raises(ImageError, match=why):
        fetcher()(f"http://127.0.0.1:{http_port}/to/{location}")
    assert all(address[0] == "127.0.0.1" for address in loopback_only)


def test_a_redirect_to_loopback_is_refused_by_the_production_rule(http_port):
    # The first hop is allowed only for this test; the hop it redirects to gets the real rule.
    calls = []

    def check_first_only(address):
        calls.append(address)
        return None if len(calls) == 1 else blocked_reason(address)

    with pytest.raises(ImageError, match="loopback"):
        fetcher(check=check_first_only)(f"http://127.0.0.1:{http_port}/to/http://localhost/")


def test_bodies_over_the_byte_cap_are_refused(http_port):
    small = fetcher(max_bytes=1000)
    with pytest.raises(ImageError, match="5,000 bytes, more than the limit of 1,000"):
        small(f"http://127.0.0.1:{http_port}/big")
    with pytest.raises(ImageError, match="more than the limit of 1,000 bytes"):
        small(f"http://127.0.0.1:{http_port}/big-chunked")
    assert len(fetcher(max_bytes=10_000)(f"http://127.0.0.1:{http_port}/big-chunked")) == 10_000


def test_the_time_cap_covers_the_whole_download(http_port):
    start = time.monotonic()
    with pytest.raises(ImageError, match=r"0\.5 s|timed out"):
        fetcher(timeout=0.5)(f"http://127.0.0.1:{http_port}/drip")
    assert time.monotonic() - start < 2.0  # the drip alone would take 5 s


def test_http_errors_and_missing_locations_are_reported(http_port):
    with pytest.raises(ImageError, match="answered HTTP 404"):
        fetcher()(f"http://127.0.0.1:{http_port}/missing")
    with pytest.raises(ImageError, match="HTTP 302 without a Location"):
        fetcher()(f"http://127.0.0.1:{http_port}/no-location")


def test_unreachable_and_unresolvable_hosts_are_image_errors(monkeypatch):
    port = _closed_port()
    with pytest.raises(ImageError, match="cannot connect"):
        fetcher()(f"http://127.0.0.1:{port}/a.png")

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # no DNS query leaves this machine
    with pytest.raises(ImageError, match=r"'images\.example\.test' cannot be resolved"):
        UrlFetcher()("http://images.example.test/a.png")


def test_resolve_host_lists_each_address_once():
    assert resolve_host("127.0.0.1", 80) == [LOOPBACK]
    assert resolve_host("2130706433", 80) == [LOOPBACK]


def test_fetcher_takes_its_caps_from_serving_limits():
    fetch = UrlFetcher.from_limits(ServingLimits(url_max_bytes=123, url_timeout=4.5))
    assert (fetch.max_bytes, fetch.timeout, fetch.check) == (123, 4.5, blocked_reason)


def test_the_operator_switch_picks_the_fetcher_or_the_refusal(monkeypatch):
    fetch = url_fetcher(ServingLimits(url_max_bytes=123))
    assert isinstance(fetch, UrlFetcher) and fetch.max_bytes == 123
    assert url_fetcher(ServingLimits(allow_urls=False)) is refuse_url

    def no_dns(*args, **kwargs):
        raise AssertionError("a refused URL must not be resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(ImageError) as caught:
        refuse_url("https://images.example.test/a.png")
    assert str(caught.value) == (
        "URL inputs are turned off by the operator (DEITKIT_ALLOW_URLS=false); send base64 "
        "image data instead of https://images.example.test/a.png"
    )


def test_https_verifies_the_certificate_against_the_host_name(tmp_path):
    ca_file, context = _tls_for("images.example.test", tmp_path)
    server = _serve(context)
    port = server.server_address[1]
    try:
        fetch = fetcher(resolve=lambda host, p: [LOOPBACK], ca_certs=str(ca_file))
        assert fetch(f"https://images.example.test:{port}/image.png") == PNG
        # Same address, but the certificate does not name this host: refused.
        with pytest.raises(ImageError, match="TLS"):
            fetch(f"https://other.example.test:{port}/image.png")
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tls_for(hostname: str, folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA file and a server context whose certificate names `hostname`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("deitkit test CA", "deitkit test CA", ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(
        hostname, "deitkit test CA", key.public_key(), ca_key, ca=False, san=hostname
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context
