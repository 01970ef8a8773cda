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

from gevent.pywsgi import Input, OldMessage, unquote_latin1

from ..loopback import LoopbackHandler

_ONE_SEND_MAX = 65536
_NOT_HTTP_ = ("CONTENT_TYPE", "CONTENT_LENGTH")


class LeanMessage(OldMessage):
    """pywsgi's headers object with a plain lookup: the first value of a name, as ``email``'s compat32 policy
    returns it for text read as iso-8859-1 (no surrogates: the value itself), without the policy's machinery."""

    def __init__(self):
        super().__init__()
        self.first: dict[str, str] = {}   # lower-case name -> its first value

    def get(self, name, failobj=None):
        return self.first.get(name.lower(), failobj)

    def __delitem__(self, name):
        super().__delitem__(name)
        self.first.pop(name.lower(), None)


def parse_headers(fp) -> OldMessage:
    """Request headers as ``http.client.parse_headers`` + ``email``'s compat32 policy leave them: the name as
    sent, the value without leading blanks and without the line end; a folded line continues the value."""
    message = LeanMessage()
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
            if sum(1 for n, _ in fields if n.lower() == name.lower()) == 1:
                message.first[name.lower()] = fields[-1][1]
            continue
        name, sep, value = text.partition(":")
        if sep:
            value = value.lstrip(" \t").rstrip("\r\n")
            fields.append((name, value))
            message.first.setdefault(name.lower(), value)


class LeanHandler(LoopbackHandler):
    def MessageClass(self, fp, *args):  # noqa: N802 — pywsgi's name
        return parse_headers(fp)

    def log_request(self):
        """The fakes serve with ``log=None`` (LoopbackServer): pywsgi would still format each request's line."""

    def get_environ(self):
        """pywsgi's WSGIHandler.get_environ (+ LoopbackHandler's raw URI), read from the parsed header pairs
        instead of re-splitting their text lines: the same keys and values for every request a client of the
        fakes sends (no folded header lines)."""
        env = self.server.get_environ()
        env["REQUEST_METHOD"] = self.command
        env["SCRIPT_NAME"] = ""
        path, _, query = self.path.partition("?")
        env["PATH_INFO"] = unquote_latin1(path)
        env["QUERY_STRING"] = query
        fields = self.headers._headers  # noqa: SLF001 — see parse_headers
        content_type = self.headers.get("content-type")
        if content_type is not None:
            env["CONTENT_TYPE"] = content_type
        length = self.headers.get("content-length")
        if length:
            env["CONTENT_LENGTH"] = length
        env["SERVER_PROTOCOL"] = self.request_version
        client_address = self.client_address
        if isinstance(client_address, tuple):
            env["REMOTE_ADDR"] = str(client_address[0])
            env["REMOTE_PORT"] = str(client_address[1])
        named = {}   # lower-case name -> its HTTP_ key
        for name, value in fields:
            if "_" in name:
                continue      # pywsgi drops them (a header name with "_" could pose as another)
            key = name.replace("-", "_").upper()
            if key in _NOT_HTTP_:
                continue
            key, value = "HTTP_" + key, value.strip()
            if key in env:
                env[key] += ("; " if "COOKIE" in key else ",") + value
            else:
                env[key] = value
                named[name.lower()] = key
        # the request's headers as the fake's _wsgi would read them back from the HTTP_ keys (lower-case, "-")
        env["fake.headers"] = {name: env[key] for name, key in named.items()}
        sock = self.socket if env.get("HTTP_EXPECT") == "100-continue" else None
        chunked = env.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        handling_reads = not self._connection_upgrade_requested()
        self.wsgi_input = Input(self.rfile, self.content_length, socket=sock, chunked_input=chunked)
        env["wsgi.input"] = self.wsgi_input if handling_reads else self.rfile
        env["wsgi.input_terminated"] = handling_reads
        env["RAW_URI"] = env["REQUEST_URI"] = self.path
        return env

    def run_application(self):
        """pywsgi's, with the fakes' usual answer — one bytes chunk with its Content-Length, to an HTTP/1.1
        request — written in one send without pywsgi's per-answer machinery (header validation and encoding,
        a Date header, the write path): the same status line, headers and body otherwise. Any other answer is
        handed to pywsgi's own start_response and writer."""
        answer = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status, headers, exc_info]
            return self.write

        result = self.application(self.environ, start_response)
        try:
            status, headers, exc_info = answer or (None, None, None)
            head = "".join(f"{name}: {value}\r\n" for name, value in headers or ())
            if (status is not None and exc_info is None and self.request_version == "HTTP/1.1"
                    and isinstance(result, list) and len(result) == 1 and isinstance(result[0], bytes)
                    and "\r" not in status and "\n" not in status and head.count("\n") == len(headers)
                    and head.count("\r") == len(headers)
                    and any(name.lower() == "content-length" for name, _ in headers)):
                self.status = status.encode("latin-1")
                self.code = int(status.split(" ", 1)[0])
                self.headers_sent = True
                self._sendall(b"HTTP/1.1 " + self.status + b"\r\n" + head.encode("latin-1") + b"\r\n" + result[0])
                return
            if status is not None:
                self.start_response(status, headers, exc_info)
            self.result = result
            self.process_result()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            self.result = None

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
