"""Fetch an image by http(s) URL without letting a request reach private networks (SSRF guard)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urljoin

import urllib3
from urllib3.util import parse_url

from deitkit import __version__
from deitkit.errors import ImageError
from deitkit.serving.limits import ServingLimits

IPAddress = IPv4Address | IPv6Address
# (host, port) → every address the name resolves to.
Resolver = Callable[[str, int], list[IPAddress]]
# An address → why it is refused, or None when it may be fetched from.
AddressCheck = Callable[[IPAddress], str | None]

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

# Instance metadata and platform endpoints: they hand out credentials to whoever asks from
# inside the VM, which is what a server-side request forgery is after.
CLOUD_METADATA = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # Azure IMDS, AWS, GCP, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "168.63.129.16",  # Azure WireServer (a public-looking address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_NAT64 = ip_network("64:ff9b::/96")


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` must not be fetched from, or None for a public internet address.

    IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`,
    NAT64 `64:ff9b::/96`) are judged by the IPv4 address as well.
    """
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = blocked_reason(embedded)
            if reason is not None:
                return f"{reason} (carried in the IPv6 address {address})"
    checks = (
        (address in CLOUD_METADATA, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (isinstance(address, IPv6Address) and address.is_site_local, "a site-local address"),
        (not address.is_global, "not a public internet address"),
    )
    return next((f"{address} is {why}" for refused, why in checks if refused), None)


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (A and AAAA records, or the literal address itself).

    Raises:
        ImageError: the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise ImageError(f"the host name {host!r} cannot be resolved ({err})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ip_address(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    hostname: str  # as resolved and as the TLS certificate must name it
    port: int
    host_header: str
    request_uri: str


class UrlFetcher:
    """Downloads one image by URL: a `deitkit.inference.FetchUrl`.

    Only http and https. The host is resolved once, every address it resolves to is checked
    with `check`, and the connection goes to the checked address itself (HTTPS still
    verifies the certificate against the host name), so a DNS answer that changes between the
    check and the connection (DNS rebinding) cannot point the request elsewhere. Redirects are
    followed by hand, each hop checked the same way. The body is capped in bytes, and the
    whole download, redirects included, in seconds.

    Args:
        max_bytes: Largest body accepted.
        timeout: Seconds for the whole download.
        max_redirects: Most redirects followed.
        resolve: Name resolution (tests substitute their own).
        check: Why an address is refused, or None; default `blocked_reason`.
        ca_certs: CA bundle for HTTPS; None: the system's trust store.
    """

    def __init__(
        self,
        *,
        max_bytes: int = ServingLimits.url_max_bytes,
        timeout: float = ServingLimits.url_timeout,
        max_redirects: int = MAX_REDIRECTS,
        resolve: Resolver = resolve_host,
        check: AddressCheck = blocked_reason,
        ca_certs: str | None = None,
    ):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.resolve = resolve
        self.check = check
        self.ca_certs = ca_certs

    @classmethod
    def from_limits(cls, limits: ServingLimits, **options) -> UrlFetcher:
        """A fetcher with `limits.url_max_bytes` and `limits.url_timeout`."""
        return cls(max_bytes=limits.url_max_bytes, timeout=limits.url_timeout, **options)

    def __call__(self, url: str) -> bytes:
        """The body of `url` (after at most `max_redirects` redirects).

        Raises:
            ImageError: the URL is refused, unreachable, slow, too large or not answered with
                a 2xx status; the message names the URL and why.
        """
        deadline = time.monotonic() + self.timeout
        for _ in range(self.max_redirects + 1):
            target = _parse(url)
            address = self._address(target)
            with self._open(target, address, deadline) as response:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise ImageError(
                            f"{_short(url)} answered HTTP {response.status} without a Location"
                        )
                    url = urljoin(url, location.strip())
                    continue
                if not 200 <= response.status < 300 or response.status == 204:
                    raise ImageError(
                        f"{_short(url)} answered HTTP {response.status} "
                        f"{response.reason or ''}".rstrip()
                    )
                return self._read_body(response, target, deadline)
        raise ImageError(f"{_short(url)}: more than {self.max_redirects} redirects")

    def _address(self, target: _Target) -> IPAddress:
        addresses = self.resolve(target.hostname, target.port)
        if not addresses:
            raise ImageError(f"the host name {target.hostname!r} resolves to no address")
        for address in addresses:
            reason = self.check(address)
            if reason is not None:
                raise ImageError(
                    f"{_short(target.url)} refused: {reason}; only public internet addresses "
                    "are fetched"
                )
        return addresses[0]

    @contextlib.contextmanager
    def _open(
        self, target: _Target, address: IPAddress, deadline: float
    ) -> Iterator[urllib3.BaseHTTPResponse]:
        remaining = self._remaining(deadline, target)
        options = {
            "port": target.port,
            "timeout": urllib3.Timeout(connect=remaining, read=remaining),
            "retries": False,
            "maxsize": 1,
        }
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                str(address),
                cert_reqs="CERT_REQUIRED",
                ca_certs=self.ca_certs,
                server_hostname=target.hostname,
                assert_hostname=target.hostname,
                **options,
            )
        else:
            pool = urllib3.HTTPConnectionPool(str(address), **options)
        headers = {
            "Host": target.host_header,
            "User-Agent": f"deitkit/{__version__}",
            "Accept": "image/*",
            "Accept-Encoding": "identity",
        }
        try:
            response = pool.urlopen(
                "GET",
                target.request_uri,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as err:
            pool.close()
            raise ImageError(f"{_short(target.url)} cannot be fetched: {_why(err)}") from None
        try:
            yield response
        finally:
            response.release_conn()
            pool.close()

    def _read_body(
        self, response: urllib3.BaseHTTPResponse, target: _Target, deadline: float
    ) -> bytes:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageError(
                f"{_short(target.url)} is {int(declared):,} bytes, more than the limit of "
                f"{self.max_bytes:,} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                _set_read_timeout(response, self._remaining(deadline, target))
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise ImageError(
                        f"{_short(target.url)} sent more than the limit of {self.max_bytes:,} bytes"
                    )
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ImageError(f"{_short(target.url)} cannot be fetched: {_why(err)}") from None
        return b"".join(chunks)

    def _remaining(self, deadline: float, target: _Target) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ImageError(
                f"{_short(target.url)} took longer than the limit of {self.timeout:g} s "
                "(for the whole download, redirects included)"
            )
        return remaining


def refuse_url(url: str) -> bytes:
    """The fetcher of an endpoint whose operator turned URL inputs off: refuses every URL.

    Raises:
        ImageError: always, naming the switch (the scorer answers 400).
    """
    raise ImageError(
        f"URL inputs are turned off by the operator (DEITKIT_ALLOW_URLS=false); send base64 "
        f"image data instead of {_short(url, 60)}"
    )


def url_fetcher(limits: ServingLimits) -> Callable[[str], bytes]:
    """What fetches URL inputs under `limits`: a `UrlFetcher`, or `refuse_url` when they are off."""
    return UrlFetcher.from_limits(limits) if limits.allow_urls else refuse_url


def _parse(url: str) -> _Target:
    try:
        parsed = parse_url(url)
    except (urllib3.exceptions.LocationParseError, ValueError, UnicodeError) as err:
        raise ImageError(f"{_short(url)} is not a valid URL ({err})") from None
    scheme = (parsed.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"{scheme or 'scheme-less'} URLs are not fetched; use http(s)")
    if not parsed.host:
        raise ImageError(f"{_short(url)} names no host")
    if parsed.auth:
        raise ImageError(f"{_short(url)}: URLs with a user name or password are not fetched")
    hostname = parsed.host.strip("[]")
    default = 443 if scheme == "https" else 80
    port = parsed.port or default
    host_header = parsed.host if parsed.port in (None, default) else f"{parsed.host}:{port}"
    return _Target(url, scheme, hostname, port, host_header, parsed.request_uri)


def _set_read_timeout(response: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """Shrink the socket timeout to the time left, so a slow drip of bytes cannot outlast it."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _why(err: Exception) -> str:
    if isinstance(err, urllib3.exceptions.NewConnectionError):  # before TimeoutError: a subclass
        # str() starts with the connection object's repr; keep the operating system's reason.
        return f"cannot connect ({str(err).split(': ', 1)[-1]})"
    if isinstance(err, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(err, urllib3.exceptions.SSLError):
        return f"the TLS connection failed ({err})"
    return str(err) or type(err).__name__


def _short(url: str, limit: int = 80) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."
