"""The lean exchange transport over TLS: a real venue is HTTPS, and a signed POST goes out in one send.

A local gevent WSGI server with a self-signed certificate (made with `openssl` for 127.0.0.1) answers on loopback;
the client trusts it through SSL_CERT_FILE (what OpenSSL's default verify paths read), so certificate
verification stays on exactly as it is against a venue. What the server received is compared byte for byte
with what was sent: small bodies (held headers + body in one send), a body above the one-send limit, a GET,
several requests on one kept-alive connection.
"""
import json
import os
import shutil
import ssl
import subprocess

import pytest
import requests
from gevent.pywsgi import WSGIServer

from integrations.exchange.transport import LeanSession

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a certificate")


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    seen = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        seen.append({"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"],
                     "query": environ.get("QUERY_STRING", ""), "body": body,
                     "signature": environ.get("HTTP_X_MBX_APIKEY"), "peer": environ.get("REMOTE_PORT"),
                     "agent": environ.get("HTTP_USER_AGENT"), "accept": environ.get("HTTP_ACCEPT")})
        reply = json.dumps({"got": len(body)}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))])
        return [reply]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = WSGIServer(("127.0.0.1", 0), app, ssl_context=context, log=None, error_log=None)
    server.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", seen
    finally:
        server.stop(timeout=1)


def test_signed_posts_and_gets_arrive_whole_over_tls_on_one_connection(tls_server):
    url, seen = tls_server
    session = LeanSession()
    small = b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01&price=60000&timestamp=1&signature=" + b"a" * 64
    large = b"x" * 70_000           # above the one-send limit: header block and body sent apart
    sent = [("POST", "/api/v3/order", small), ("POST", "/api/v3/order/cancelReplace", small + b"&x=1"),
            ("GET", "/api/v3/openOrders?symbol=BTCUSDT", None), ("POST", "/api/v3/big", large),
            ("DELETE", "/api/v3/order?symbol=BTCUSDT&origClientOrderId=c1", None), ("POST", "/api/v3/order", small)]
    for method, path, body in sent:
        answer = session.request(method, url + path, data=body, timeout=10,
                                 headers={"X-MBX-APIKEY": "key", "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200
        assert json.loads(answer.text) == {"got": len(body or b"")}
    assert [(s["method"], s["path"], s["body"]) for s in seen] == [
        (m, p.split("?")[0], b or b"") for m, p, b in sent]
    assert all(s["signature"] == "key" for s in seen)
    assert len({s["peer"] for s in seen}) == 1      # kept alive: every request on the same connection
    assert session.requests == len(sent) and session.pools == 1
    session.close()


def test_an_untrusted_certificate_is_refused(tls_server, monkeypatch, tmp_path):
    url, seen = tls_server
    other = tmp_path / "empty.pem"
    other.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with pytest.raises(requests.exceptions.ConnectionError):
        LeanSession().request("POST", url + "/api/v3/order", data=b"a=1", timeout=10)
    assert seen == []



def test_mixin_client_verifies_tls_with_the_environments_ca_bundle_on_the_lean_transport(tls_server, monkeypatch):
    # REQUESTS_CA_BUNDLE names one file: the Mixin client's own session goes lean and verifies with that file
    from integrations.mixin.client import MixinClient
    from integrations.mixin.errors import MixinBadResponse, MixinTransportError

    url, seen = tls_server
    cert = os.environ["SSL_CERT_FILE"]
    monkeypatch.delenv("SSL_CERT_FILE")                     # only the bundle the client is given can trust it
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    client = MixinClient(url, None, max_attempts=1)
    with pytest.raises(MixinBadResponse, match="JSON without data"):  # verified, sent, answered by the stub
        client.request("GET", "/network/assets/x", auth=False)
    assert client._lean is not None and client._lean.requests == 1 and seen[-1]["path"] == "/network/assets/x"
    assert seen[-1]["agent"] == requests.utils.default_user_agent()  # the headers requests would have sent
    assert seen[-1]["accept"] == "application/json"
    client.close()

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    stranger = MixinClient(url, None, max_attempts=1)       # a bundle that does not trust it: refused, not sent
    with pytest.raises(MixinTransportError):
        stranger.request("GET", "/network/assets/y", auth=False)
    assert stranger._lean is not None and seen[-1]["path"] == "/network/assets/x"
    stranger.close()
