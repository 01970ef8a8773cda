"""The fake exchange's HTTP handler: pywsgi's, with less CPU per request.

The fake runs beside the service on the same cores in the benches (bench/mm_loop.py), so its CPU per
request counts against what the service can sustain. Two costs of pywsgi's defaults that a test double
does not need: request headers parsed through the ``email`` package (~a quarter of the fake's CPU per
request, measured with cProfile), and a reply written in two sends (status line + headers, then the
body). Same headers object (pywsgi's ``OldMessage``), same limits (line length, header count), same bytes
on the wire.
"""
from __future__ import annotations

from http.client import _MAXHEADERS, _MAXLINE  # noqa: PLC2701 — http.client's own limits

from gevent.pywsgi import OldMessage

from ..loopback import LoopbackHandler

_ONE_SEND_MAX = 65536


def parse_headers(fp) -> OldMessage:
    """Request headers as ``http.client.parse_headers`` + ``email``'s compat32 policy leave them: the name as
    sent, the value without leading blanks and without the line end; a folded line continues the value."""
    message = OldMessage()
    fields = message._headers  # noqa: SLF001 — email.message.Message keeps (name, value) pairs here
    while True:
        line = fp.readline(_MAXLINE + 1)
        if len(line) > _MAXLINE:
            message.status = "Line too long"
            return message
        if line in (b"\r\n", b"\n", b""):
            return message
        if len(fields) >= _MAXHEADERS:
            message.status = f"got more than {_MAXHEADERS} headers"
            return message
        text = line.decode("iso-8859-1")
        if text[0] in " \t" and fields:  # obsolete folding: part of the previous value
            name, value = fields[-1]
            fields[-1] = (name, value + "\r\n" + text.rstrip("\r\n"))
            continue
        name, sep, value = text.partition(":")
        if sep:
            fields.append((name, value.lstrip(" \t").rstrip("\r\n")))


class LeanHandler(LoopbackHandler):
    def MessageClass(self, fp, *args):  # noqa: N802 — pywsgi's name
        return parse_headers(fp)

    def _write_with_headers(self, data):
        """pywsgi's, with a small body in the same send as the headers."""
        self.headers_sent = True
        self.finalize_headers()
        towrite = bytearray(b"HTTP/1.1 ")
        towrite += self.status
        towrite += b"\r\n"
        for header, value in self.response_headers:
            towrite += header
            towrite += b": "
            towrite += value
            towrite += b"\r\n"
        towrite += b"\r\n"
        if data and not self.response_use_chunked and len(data) <= _ONE_SEND_MAX:
            towrite += data
            self._sendall(towrite)
            return
        self._sendall(towrite)
        self._write(data)
