"""HTTPS and proxies, the way the anchor's httpx client handles them, checked
against real loopback servers: a TLS capture server with a certificate from a
throwaway CA (trustme), and a small forward proxy that records what it was
asked (absolute-form requests for ``http://`` targets, ``CONNECT`` tunnels for
``https://`` ones) before passing the bytes on.

Each scenario runs the same user script under the anchor and under ours;
both must end the same way (success, or the same exception class), and the
servers must see the same traffic. The two deliberate differences (a network
in ``NO_PROXY``, a SOCKS proxy) are checked on ours alone."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import pytest
import trustme

from .conftest import CaptureServer, run_script
from .support.proxy import FAR_HOST, ForwardProxy

# Variables that steer either SDK's HTTP stack; every scenario sets the ones it
# needs and clears the rest, so the machine's own settings cannot leak in.
_STEERING = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUEST_METHOD",
)

SCRIPT = """
import json, sys
from infinium import InfiniumClient
try:
    client = InfiniumClient(
        agent_id="6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", agent_secret="tls-secret-value",
        base_url=BASE, max_retries=0, timeout=10.0, VERIFY
    )
    r = client.send_task(name="tls", description="over the wire", duration=1.5)
    out = {"ok": r.success, "status": r.status_code}
except Exception as e:
    out = {"ok": False, "error": type(e).__name__, "message": str(e)}
print(json.dumps(out))
"""


def script_for(base: str, verify: Optional[bool] = None) -> str:
    return SCRIPT.replace("BASE", repr(base)).replace(
        "VERIFY", "" if verify is None else f"verify_ssl={verify!r}"
    )


def only(env: Dict[str, str]) -> Dict[str, Optional[str]]:
    """``env`` with every other steering variable unset."""
    full: Dict[str, Optional[str]] = {k: None for k in _STEERING}
    full.update(env)
    return full


def send(
    python: str, base: str, env: Dict[str, str], verify: Optional[bool] = None
) -> Dict[str, object]:
    out: Dict[str, object] = json.loads(run_script(python, script_for(base, verify), only(env)))
    return out


def run_both(
    anchor_python: str, base: str, env: Dict[str, str], verify: Optional[bool] = None
) -> Tuple[Dict[str, object], Dict[str, object]]:
    return send(anchor_python, base, env, verify), send(sys.executable, base, env, verify)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[CaptureServer]:
    cert = ca.issue_cert("localhost", FAR_HOST, "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    srv = CaptureServer(tls=ctx, host="localhost")
    try:
        yield srv
    finally:
        srv.close()


def _trace_posts(srv: CaptureServer) -> int:
    return sum(1 for r in srv.requests if r.method == "POST" and r.path.endswith("/trace"))


# --- HTTPS -----------------------------------------------------------------------


def test_untrusted_certificate_fails_as_network_error_and_sends_nothing(
    anchor_python: str, tls_server: CaptureServer
) -> None:
    theirs, ours = run_both(anchor_python, tls_server.base_url, {})
    assert theirs["ok"] is False and theirs["error"] == "NetworkError", theirs
    assert ours["ok"] is False and ours["error"] == "NetworkError", ours
    assert str(ours["message"]).startswith("Network error: ")
    assert "certificate" in str(ours["message"]).lower(), ours
    assert "tls-secret-value" not in str(ours["message"])
    assert tls_server.requests == []


def test_verify_ssl_false_accepts_a_self_signed_server(
    anchor_python: str, tls_server: CaptureServer
) -> None:
    theirs, ours = run_both(anchor_python, tls_server.base_url, {}, verify=False)
    assert theirs == {"ok": True, "status": 200}
    assert ours == theirs
    assert _trace_posts(tls_server) == 2
    anchor_req, our_req = tls_server.requests
    assert our_req.headers["x-agent-key"] == "tls-secret-value"
    assert our_req.headers["host"] == anchor_req.headers["host"] == f"localhost:{tls_server.port}"


def test_ssl_cert_file_is_trusted(
    anchor_python: str, tls_server: CaptureServer, ca_file: Path
) -> None:
    theirs, ours = run_both(anchor_python, tls_server.base_url, {"SSL_CERT_FILE": str(ca_file)})
    assert theirs == {"ok": True, "status": 200}
    assert ours == theirs
    assert _trace_posts(tls_server) == 2


_CHANGING_TRUST = """
import json, os, sys
from infinium import InfiniumClient, NetworkError
def send():
    client = InfiniumClient(
        agent_id="6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f", agent_secret="tls-secret-value",
        base_url=sys.argv[1], max_retries=0, timeout=10.0,
    )
    try:
        return client.send_task(name="tls", description="d", duration=1.0).status_code
    except NetworkError as e:
        return "certificate" in str(e).lower() and "untrusted"
    finally:
        client.close()
seen = [send()]
os.environ["SSL_CERT_FILE"] = sys.argv[2]
seen.append(send())
del os.environ["SSL_CERT_FILE"]
seen.append(send())
print(json.dumps(seen))
"""


def test_each_client_reads_ssl_cert_file_as_it_is_then(
    tls_server: CaptureServer, ca_file: Path
) -> None:
    # The trust store is built once per process (reading the system's CA
    # bundle costs milliseconds) and again when SSL_CERT_FILE/SSL_CERT_DIR
    # change: a client made after the change trusts what the variable names
    # now, as an httpx client made then would, and one made after it is
    # unset no longer does.
    out = run_script(
        sys.executable, _CHANGING_TRUST, only({}), args=[tls_server.base_url, str(ca_file)]
    )
    assert json.loads(out) == ["untrusted", 200, "untrusted"]
    assert _trace_posts(tls_server) == 1


def test_certificate_for_another_name_is_refused(
    anchor_python: str, ca: trustme.CA, ca_file: Path
) -> None:
    # A certificate the trusted CA issued, but for another host name.
    cert = ca.issue_cert("elsewhere.example")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    srv = CaptureServer(tls=ctx, host="localhost")
    try:
        theirs, ours = run_both(anchor_python, srv.base_url, {"SSL_CERT_FILE": str(ca_file)})
        assert theirs["error"] == ours["error"] == "NetworkError", (theirs, ours)
        assert srv.requests == []
    finally:
        srv.close()


def test_a_machine_without_ca_certificates_still_builds_clients(
    capture_server: CaptureServer, tls_server: CaptureServer, tmp_path: Path
) -> None:
    # An empty CA file stands in for a slim image without ca-certificates:
    # the anchor verifies with certifi's Mozilla roots there; the system
    # verifier alone refused to be built ("cannot build the HTTP client"),
    # even for an http:// URL. Mozilla's roots are trusted beside the system's.
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    env = {"SSL_CERT_FILE": str(empty)}
    assert send(sys.executable, capture_server.base_url, env) == {"ok": True, "status": 200}
    # Certificates are still checked: a private CA is not trusted.
    out = send(sys.executable, tls_server.base_url, env)
    assert out["error"] == "NetworkError", out
    assert tls_server.requests == []


# --- proxies -----------------------------------------------------------------------


def test_http_proxy_gets_absolute_form_with_credentials(
    anchor_python: str, capture_server: CaptureServer
) -> None:
    proxy = ForwardProxy(capture_server.port)
    try:
        proxy_url = f"http://pxuser:px%40pass@127.0.0.1:{proxy.port}"
        base = f"http://{FAR_HOST}:{capture_server.port}/api/v1"
        theirs, ours = run_both(anchor_python, base, {"HTTP_PROXY": proxy_url})
        assert theirs == {"ok": True, "status": 200}
        assert ours == theirs
        assert len(proxy.seen) == 2
        expected_auth = "Basic " + base64.b64encode(b"pxuser:px@pass").decode()
        for seen in proxy.seen:
            assert seen.line.startswith(
                f"POST http://{FAR_HOST}:{capture_server.port}/api/v1/agents/"
            )
            assert seen.line.endswith("/trace HTTP/1.1")
            assert seen.headers["proxy-authorization"] == expected_auth
            assert seen.headers["host"] == f"{FAR_HOST}:{capture_server.port}"
        assert _trace_posts(capture_server) == 2
        # The credentials for the proxy never reach the API.
        assert all("proxy-authorization" not in r.headers for r in capture_server.requests)
    finally:
        proxy.close()


def test_https_proxy_tunnels_with_connect(
    anchor_python: str, tls_server: CaptureServer, ca_file: Path
) -> None:
    proxy = ForwardProxy(tls_server.port)
    try:
        base = f"https://{FAR_HOST}:{tls_server.port}/api/v1"
        env = {
            "HTTPS_PROXY": f"http://tun:nel@127.0.0.1:{proxy.port}",
            "SSL_CERT_FILE": str(ca_file),
        }
        theirs, ours = run_both(anchor_python, base, env)
        assert theirs == {"ok": True, "status": 200}
        assert ours == theirs
        assert [s.line for s in proxy.seen] == [
            f"CONNECT {FAR_HOST}:{tls_server.port} HTTP/1.1"
        ] * 2
        for seen in proxy.seen:
            assert (
                seen.headers["proxy-authorization"]
                == "Basic " + base64.b64encode(b"tun:nel").decode()
            )
        assert _trace_posts(tls_server) == 2
        # Inside the tunnel the request is an ordinary origin-form one.
        assert all(r.path.startswith("/api/v1/agents/") for r in tls_server.requests)
    finally:
        proxy.close()


def test_no_proxy_bypasses_the_proxy(anchor_python: str, capture_server: CaptureServer) -> None:
    proxy = ForwardProxy(capture_server.port)
    try:
        env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1,localhost"}
        theirs, ours = run_both(anchor_python, capture_server.base_url, env)
        assert theirs == {"ok": True, "status": 200}
        assert ours == theirs
        assert proxy.seen == []
        assert _trace_posts(capture_server) == 2
    finally:
        proxy.close()


# Environments whose routing both SDKs must decide alike. PROXY stands for the
# recording proxy's URL; the base URL is the capture server's 127.0.0.1 one.
ROUTING_CASES = [
    {"HTTP_PROXY": "PROXY"},
    {"http_proxy": "PROXY"},
    {"ALL_PROXY": "PROXY"},
    {"all_proxy": "PROXY", "HTTPS_PROXY": "http://127.0.0.1:9"},
    {"HTTPS_PROXY": "PROXY"},
    {"HTTP_PROXY": "PROXY_NO_SCHEME"},
    # NO_PROXY=* turns every proxy off, for an IP address host too (reqwest's
    # own matcher kept proxying those).
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "*"},
    {"http_proxy": "PROXY", "no_proxy": "example.com, *"},
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "127.0.0.1"},
    {"HTTP_PROXY": "PROXY", "no_proxy": "127.0.0.2,localhost"},
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "127.0.0.1:PORT"},
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "127.0.0.1:1"},
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "http://127.0.0.1"},
    {"HTTP_PROXY": "PROXY", "NO_PROXY": "https://127.0.0.1"},
    # Lowercase names win over uppercase ones; an empty lowercase one unsets.
    {"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "PROXY"},
    {"HTTP_PROXY": "PROXY", "http_proxy": ""},
    # Under CGI, HTTP_PROXY may come from a request header: ignored.
    {"HTTP_PROXY": "PROXY", "REQUEST_METHOD": "GET"},
    {"http_proxy": "PROXY", "REQUEST_METHOD": "GET"},
]


@pytest.mark.parametrize(
    "case", ROUTING_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
)
def test_proxy_routing_matches_the_anchor(
    anchor_python: str, capture_server: CaptureServer, case: Dict[str, str]
) -> None:
    proxy = ForwardProxy(capture_server.port)
    try:
        env = {
            k: v.replace("PROXY_NO_SCHEME", f"127.0.0.1:{proxy.port}")
            .replace("PROXY", proxy.url)
            .replace("PORT", str(capture_server.port))
            for k, v in case.items()
        }
        routes = []
        for python in (anchor_python, sys.executable):
            before = len(proxy.seen)
            out = send(python, capture_server.base_url, env)
            routes.append((out, "proxied" if len(proxy.seen) > before else "direct"))
        assert routes[1] == routes[0], f"anchor {routes[0]}, ours {routes[1]}"
    finally:
        proxy.close()


def test_a_network_in_no_proxy_bypasses_the_proxy(capture_server: CaptureServer) -> None:
    # Deliberately unlike the anchor (httpx compares the address part of
    # 127.0.0.0/8 alone and proxies 127.0.0.1): curl's meaning.
    proxy = ForwardProxy(capture_server.port)
    try:
        env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "10.0.0.0/8,127.0.0.0/8"}
        assert send(sys.executable, capture_server.base_url, env) == {"ok": True, "status": 200}
        assert proxy.seen == []
        env["NO_PROXY"] = "10.0.0.0/8"
        assert send(sys.executable, capture_server.base_url, env) == {"ok": True, "status": 200}
        assert len(proxy.seen) == 1
    finally:
        proxy.close()


def test_a_socks_proxy_is_refused_clearly(capture_server: CaptureServer) -> None:
    env = {"ALL_PROXY": "socks5://user:hunter22@127.0.0.1:1080"}
    out = send(sys.executable, capture_server.base_url, env)
    assert out["error"] == "ConfigurationError", out
    assert "SOCKS proxies are not supported" in out["message"]
    assert "hunter22" not in out["message"]
    assert capture_server.requests == []


def test_a_malformed_proxy_url_fails_each_send_not_the_construction(
    anchor_python: str, capture_server: CaptureServer
) -> None:
    # The anchor's httpx builds its client and then fails the sends; a
    # decorated module must not fail at import over an environment variable.
    theirs, ours = run_both(
        anchor_python, capture_server.base_url, {"HTTP_PROXY": "http://u:pw@proxy:99999"}
    )
    assert theirs["error"] == ours["error"] == "NetworkError", (theirs, ours)
    assert str(ours["message"]).startswith(
        'Network error: invalid proxy URL "http://u:[secure]@proxy:99999": '
    )
    assert capture_server.requests == []


def test_an_unreachable_proxy_is_an_error_not_a_silent_direct_send(
    anchor_python: str, capture_server: CaptureServer
) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    theirs, ours = run_both(
        anchor_python, capture_server.base_url, {"HTTP_PROXY": f"http://127.0.0.1:{port}"}
    )
    assert theirs["ok"] is False and ours["ok"] is False, (theirs, ours)
    assert capture_server.requests == []
