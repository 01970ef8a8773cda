"""Assembling and running the actor tree; logging setup.

    RootSupervisor (rest_for_one; escalation = the process exits non-zero)
      store → treasury → orders (OrderSupervisor) → router → poller → kpi (KpiSampler, if [kpi] enabled)
      → archiver (Archiver, with an [archive] interval)
      [→ api (ApiServer, when [api] is enabled)]

Children start left to right, the poller last, so nothing is polled before
there is someone to route it to; a death restarts the children after it.

Logging (``setup_logging``), outside debug mode:

- every record goes through ``integrations.redaction``: each configured secret value (exchange keys,
  the keystore's private fields, HuFi keys, a database password, bearer tokens) is masked in the
  message, the extras and the exception, and again in the final text of every sink and of
  ``sys.stdout`` / ``sys.stderr``;
- loguru's ``diagnose`` (local variables in tracebacks) and ``backtrace`` are off;
- stderr gets ONE line per record: an exception is said as its class and message (`` | Err: msg``),
  never as a traceback; the full traceback goes only to the debug log file: ``$MMFLOW_DEBUG_LOG``
  if set (``off`` disables it), else ``mmflow-debug.log`` next to the SQLite database (none for
  PostgreSQL), mode 0600, rotated at 20 MB (one ``.1`` kept);
- uncaught exceptions (main thread, threads, greenlets) are logged the same way, stdlib logging
  (WARNING and up: urllib3, ccxt) is forwarded to loguru.

Debug mode (``debug=True`` or ``MMFLOW_DEBUG=1``): diagnose, backtrace and tracebacks on stderr —
still redacted.

``serve`` exits 0 on SIGTERM/SIGINT; 70 when the root supervisor gives up (its one CRITICAL line
says why) or when the tree cannot start (one CRITICAL line ``mmflow cannot start: …``).
The entry point calls ``setup_logging`` (``secrets=secrets_of(config)``, ``debug_log=
default_debug_log(config)``), ``build_services`` (which adds the keystore's secrets) and ``serve``.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gevent
import pykka
from loguru import logger
from pykka.messages import ProxyGetAttr

from actors.campaigns import CampaignActor
from actors.orders import OrderSupervisor
from actors.poller import SnapshotPoller
from actors.router import Router
from actors.services import Services
from actors.store import StoreActor
from actors.supervisor import (
    ChildSpec,
    Restart,
    StartFailed,
    Strategy,
    Supervisor,
    describe,
    install_pykka_log_bridge,
    start_failure,
)
from actors.treasury import Treasury
from domain.config import Config
from integrations.assets import AssetCatalog
from integrations.fee_oracle import FeeOracle
from integrations.mixin.client import MixinClient
from integrations.mixin.keystore import Keystore, load_bot_keystore
from integrations.mixin.safe_wallet import SafeWallet
from integrations.redaction import (
    RedactingStream,
    add_secrets,
    patch_record,
    secrets_of,
)
from storage.db import open_database

LOG_FORMAT = ("<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
              "<cyan>{extra[order_id]}</cyan>{message}")
_CONSOLE_FORMAT = LOG_FORMAT.replace("<cyan>{extra[order_id]}</cyan>", "")
_FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <8} {name}:{function}:{line} {message}{extra[exc_note]}"
DEBUG_LOG_NAME = "mmflow-debug.log"
DEBUG_LOG_MAX_BYTES = 20 * 1024 * 1024
EXIT_GAVE_UP = 70
_WARNING_NO = 30
GATEWAY_BACKOFF_CAP = 60.0


@dataclass
class _LoggingState:
    configured: bool = False
    debug: bool = False
    level: str = "INFO"
    debug_log: str | None = None
    debug_sink: int | None = None
    debug_stream: object = None


_LOGGING = _LoggingState()


def debug_from_env() -> bool:
    return os.environ.get("MMFLOW_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def default_debug_log(config: Config | None) -> str | None:
    """``$MMFLOW_DEBUG_LOG`` (``off``/``none``/empty: no debug log), else next to the SQLite database."""
    env = os.environ.get("MMFLOW_DEBUG_LOG")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "none", "-", "0") else env
    url = getattr(getattr(config, "database", None), "url", "") or ""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return str(Path(url[len("sqlite:///"):]).parent / DEBUG_LOG_NAME)
    return None


class _RotatingFile:
    """Append-only text file (created 0600) renamed to ``.1`` when it passes ``max_bytes``."""

    def __init__(self, path: str, max_bytes: int = DEBUG_LOG_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._open()

    def _open(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> int:
        self._file.write(text)
        if self._file.tell() > self.max_bytes:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = self._open()
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def stop(self) -> None:
        self._file.close()


def _console_format(debug: bool):
    def fmt(record) -> str:
        line = _CONSOLE_FORMAT + ("{extra[exc_note]}" if record["extra"].get("exc_note") else "") + "\n"
        return line + "{exception}" if debug else line
    return fmt


def _json_format(debug: bool):
    def fmt(record) -> str:
        line = "{message}" + ("{extra[exc_note]}" if record["extra"].get("exc_note") else "") + "\n"
        return line + "{exception}" if debug else line
    return fmt


def _console_filter(record) -> bool:
    """Off the console: tracebacks meant for the debug log only, and the Mixin client's per-attempt retry
    warnings of a request whose caller reports the outage itself, once per retry window (the poller)."""
    extra = record["extra"]
    if extra.get("debug_only"):
        return False
    return not (extra.get("outage_reported") and record["name"].startswith("integrations.mixin.")
                and record["level"].no == _WARNING_NO)


class _StdlibToLoguru(logging.Handler):
    """Other libraries' stdlib log records (urllib3, ccxt, ...) through loguru, so through redaction."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "pykka" or record.name.startswith("pykka."):
            return  # install_pykka_log_bridge has its own handler on that logger
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        exc_info = record.exc_info if record.exc_info and record.exc_info[0] else None
        logger.opt(exception=exc_info).log(level, "{}: {}", record.name, record.getMessage())


def _install_exception_hooks() -> None:
    """Uncaught exceptions become one log line (the traceback goes where tracebacks go: the debug log)."""

    def main_hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logger.opt(exception=(exc_type, exc, tb)).critical("mmflow: uncaught exception: {}", describe(exc))

    def thread_hook(args) -> None:
        if args.exc_type is SystemExit:
            return
        name = getattr(args.thread, "name", "?")
        logger.opt(exception=(args.exc_type, args.exc_value, args.exc_traceback)).error(
            "thread {} died: {}", name, describe(args.exc_value))

    def greenlet_hook(context, exc_type, exc, tb) -> None:
        try:
            where = repr(context)[:120] if context is not None else "the gevent hub"
            logger.opt(exception=(exc_type, exc, tb)).error("greenlet {} failed: {}", where, describe(exc))
        except Exception:  # noqa: BLE001, S110 - must never raise (gevent's rule)
            pass

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
    gevent.get_hub().print_exception = greenlet_hook


def _install_stdlib_bridge() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _StdlibToLoguru) for h in root.handlers):
        root.addHandler(_StdlibToLoguru(logging.WARNING))
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)


def setup_logging(level: str = "INFO", json: bool = False, sink=None, *, debug: bool | None = None,
                  secrets=(), debug_log: str | None = None) -> None:
    """Configure loguru for the service (see the module docstring). Idempotent; may be called again.

    ``secrets``: values to mask from now on (``integrations.redaction.secrets_of(config)``; the
    keystore's are added by ``build_services``). ``debug``: None reads ``MMFLOW_DEBUG``.
    ``debug_log``: the debug log file (None: ``serve`` picks ``default_debug_log(config)``)."""
    debug = debug_from_env() if debug is None else bool(debug)
    add_secrets(secrets)
    logger.remove()
    _close_debug_log()
    logger.configure(extra={"order_id": "", "exc_note": ""}, patcher=patch_record)
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
    console = sink if sink is not None else sys.stderr
    if hasattr(console, "write") and not isinstance(console, RedactingStream):
        console = RedactingStream(console)
    options = {"level": level, "backtrace": debug, "diagnose": debug, "filter": _console_filter}
    if json:
        logger.add(console, serialize=True, format=_json_format(debug), colorize=False, **options)
    else:
        colorize = bool(getattr(console, "isatty", lambda: False)())
        logger.add(console, format=_console_format(debug), colorize=colorize, **options)
    _LOGGING.configured = True
    _LOGGING.debug = debug
    _LOGGING.level = level
    _LOGGING.debug_log = None
    if debug_log:
        _open_debug_log(debug_log)
    install_pykka_log_bridge()
    _install_stdlib_bridge()
    _install_exception_hooks()


def _open_debug_log(path: str) -> None:
    _close_debug_log()
    try:
        stream = _RotatingFile(path)
    except OSError as exc:
        logger.warning("debug log {} cannot be opened ({}); tracebacks are not kept", path, exc.strerror or exc)
        return
    level = "DEBUG" if _LOGGING.debug else (
        _LOGGING.level if logger.level(_LOGGING.level).no <= logger.level("INFO").no else "INFO")
    sink_id = logger.add(RedactingStream(stream), level=level, format=_FILE_FORMAT, colorize=False,
                         backtrace=_LOGGING.debug, diagnose=_LOGGING.debug)
    _LOGGING.debug_log = path
    _LOGGING.debug_sink = sink_id
    _LOGGING.debug_stream = stream


def _close_debug_log() -> None:
    sink_id, _LOGGING.debug_sink = _LOGGING.debug_sink, None
    if sink_id is not None:
        try:
            logger.remove(sink_id)
        except ValueError:
            pass
    stream = getattr(_LOGGING, "debug_stream", None)
    if stream is not None:
        _LOGGING.debug_stream = None
        try:
            stream.stop()
        except OSError:
            pass
    _LOGGING.debug_log = None


def _log_traceback(exc: BaseException, what: str) -> None:
    """The full traceback of ``exc``, to the debug log only (never to stderr outside debug mode)."""
    logger.bind(debug_only=not _LOGGING.debug).opt(exception=exc).error("{} (traceback)", what)


def build_services(config: Config, *, keystore: Keystore | None = None, clock=None) -> Services:
    """The shared services. Nothing here calls Mixin or an exchange: an outage cannot stop the start.

    With logging set up by ``setup_logging`` the config's and the keystore's secrets are masked from
    here on."""
    if _LOGGING.configured:
        add_secrets(secrets_of(config))
    cluster = None
    if config.cluster is not None:
        from actors.cluster import Cluster
        cluster = Cluster(config)
        # every session of this process is named after the instance (libpq's PGAPPNAME), so a frozen instance's
        # sessions can be ended by the instance that takes over its leases (storage/cluster.py)
        os.environ["PGAPPNAME"] = cluster.session_name
    db = open_database(config.database.url, busy_timeout=config.database.busy_timeout,
                       pool_size=config.database.pool_size)
    keystore = keystore or load_bot_keystore(config.mixin.keystore_path)
    if _LOGGING.configured:
        add_secrets(secrets_of(config, keystore))
    mixin = MixinClient(config.mixin.api_base, keystore, timeout=config.mixin.request_timeout,
                        max_attempts=config.mixin.max_attempts, backoff_base=config.mixin.backoff_base,
                        backoff_max=config.mixin.backoff_max)
    if keystore.can_spend:
        wallet = SafeWallet(mixin, keystore)
    else:
        wallet = None
        logger.error("keystore has no spend_private_key: refunds and withdrawals will be queued but NOT sent")
    services = Services(config=config, db=db, mixin=mixin,
                        fee_oracle=FeeOracle(mixin, config.payments.market_making_fee_percent), wallet=wallet,
                        assets=AssetCatalog(mixin))
    if clock is not None:
        services.clock = clock
    services.cluster = cluster
    return services


def wait_started(ref, timeout: float = 60.0):
    """Block until the actor's setup() has run, like OTP's synchronous start_link.

    pykka answers an ask only after on_start; a ProxyGetAttr is answered by pykka
    itself, whatever the actor's own message handling. A failed setup raises StartFailed
    here, with the reason the actor gave (pykka itself only says ActorDeadError)."""
    try:
        ref.ask(ProxyGetAttr(("child_id",)), timeout=timeout)
    except pykka.ActorDeadError as exc:
        reason = start_failure(ref.actor_urn)
        raise StartFailed(reason or f"{ref.actor_class.__name__} stopped before it started ({exc})") from None
    return ref


def _child(name: str, factory, services: Services) -> ChildSpec:
    def start(supervisor, child_id):
        ref = factory.start(services, supervisor=supervisor, child_id=child_id)
        services.refs[name] = ref
        return wait_started(ref)
    return ChildSpec(id=name, start=start, restart=Restart.PERMANENT)


def gateway_spec(services: Services, cfg) -> ChildSpec:
    """The ExchangeGateway of one account (``services`` may be fenced: see actors/cluster.py)."""
    from actors.gateway import ExchangeGateway

    sv = services.config.supervision
    # an account that cannot be reached is retried with the supervision backoff (never failed: see
    # actors/gateway.py), capped at 60 s
    backoff_min = max(sv.backoff_min, 0.01)
    backoff_max = min(max(sv.backoff_max, backoff_min), GATEWAY_BACKOFF_CAP)

    def start(supervisor, child_id):
        return wait_started(ExchangeGateway.start(services, cfg, supervisor=supervisor, child_id=child_id,
                                                  backoff_min=backoff_min, backoff_max=backoff_max))
    return ChildSpec(id=cfg.account_id, start=start, restart=Restart.PERMANENT)


def exchanges_spec(services: Services, accounts=None) -> ChildSpec:
    """One ExchangeGateway per account (default: every configured one), under their own one_for_one supervisor."""
    sv = services.config.supervision
    accounts = services.config.exchanges if accounts is None else accounts

    def start(supervisor, child_id):
        ref = Supervisor.start("exchanges", [gateway_spec(services, c) for c in accounts],
                               strategy=Strategy.ONE_FOR_ONE, intensity=sv.intensity, period=sv.period,
                               backoff_min=sv.backoff_min, backoff_max=sv.backoff_max, supervisor=supervisor,
                               child_id=child_id)
        services.refs["exchanges"] = ref
        return wait_started(ref)
    return ChildSpec(id="exchanges", start=start, restart=Restart.PERMANENT)


def _role_specs(services: Services) -> dict[str, ChildSpec]:
    """The cluster's singleton roles: what the instance holding each lease runs, with fenced services."""
    from actors.cluster import role_spec
    from domain import cluster as rules

    sv = services.config.supervision

    def single(lease: str, name: str, factory) -> ChildSpec:
        return role_spec(lease, lambda sup, cid: _child(name, factory, services.fenced(lease)).start(sup, cid))

    def ingest(sup, cid):
        fenced = services.fenced(rules.INGEST)
        ref = Supervisor.start("ingest", [_child("router", Router, fenced), _child("poller", SnapshotPoller, fenced)],
                               strategy=Strategy.REST_FOR_ONE, intensity=sv.intensity, period=sv.period,
                               backoff_min=sv.backoff_min, backoff_max=sv.backoff_max, supervisor=sup, child_id=cid)
        return wait_started(ref)

    specs = {rules.INGEST: role_spec(rules.INGEST, ingest),
             rules.TREASURY: single(rules.TREASURY, "treasury", Treasury),
             rules.CAMPAIGNS: single(rules.CAMPAIGNS, "campaigns", CampaignActor)}
    if services.config.kpi.enabled:
        from actors.kpi import KpiSampler
        specs[rules.KPI] = single(rules.KPI, "kpi", KpiSampler)
    return specs


def _cluster_children(services: Services) -> list[ChildSpec]:
    """store → exchanges (gateways added per account owned) → orders → cluster (roles, accounts)."""
    from actors.cluster import ClusterActor

    def cluster(supervisor, child_id):
        ref = ClusterActor.start(services, _role_specs(services), lambda cfg, fenced: gateway_spec(fenced, cfg),
                                 supervisor=supervisor, child_id=child_id)
        services.refs["cluster"] = ref
        return wait_started(ref)
    return [_child("store", StoreActor, services), exchanges_spec(services, accounts=()),
            _child("orders", OrderSupervisor, services), ChildSpec(id="cluster", start=cluster)]


@dataclass
class Escalation:
    """Set by the root supervisor when it gives up; the process then exits non-zero."""
    event: threading.Event
    reason: str = ""


def start_tree(services: Services, escalation: Escalation):
    sv = services.config.supervision

    def on_escalate(reason: str) -> None:
        escalation.reason = reason
        escalation.event.set()

    # The collector's thresholds before the children start, not only once they are up: an exchange gateway's
    # start-up reconciliation reads every open order of its account (100,000 of them: a few million young
    # objects), and with the defaults a growing heap paid a full pass every ~25 % of growth (7 of them, ~8 s, in a
    # 100k restart of bench/recovery.py) before tune_gc() ran.
    gc.set_threshold(*GC_THRESHOLDS)
    if services.cluster is not None:
        children = _cluster_children(services)
    else:
        children = [
            _child("store", StoreActor, services),
            _child("treasury", Treasury, services),
            exchanges_spec(services),
            _child("campaigns", CampaignActor, services),
            _child("orders", OrderSupervisor, services),
            _child("router", Router, services),
            _child("poller", SnapshotPoller, services),
        ]
    if services.config.kpi.enabled and services.cluster is None:
        from actors.kpi import KpiSampler
        children.append(_child("kpi", KpiSampler, services))  # after the poller: a restart of it restarts only the api
    archive = services.config.archive
    if archive is not None and archive.interval > 0:
        from actors.archiver import Archiver
        children.append(_child("archiver", Archiver, services))
    if getattr(services.config.api, "enabled", False):
        from api.server import ApiServer
        children.append(_child("api", ApiServer, services))  # last: its restarts restart nothing else
    root = Supervisor.start("root", children, strategy=Strategy.REST_FOR_ONE, intensity=sv.intensity,
                            period=sv.period, backoff_min=sv.backoff_min, backoff_max=sv.backoff_max,
                            on_escalate=on_escalate)
    started = wait_started(root)
    tune_gc()
    return started


# gen0 every 20k allocations (default 700), gen1 every 20 of those, gen2 every 100 gen1 (and, as always, only once
# the objects surviving since the last full pass are a quarter of the heap).
GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """Why: with the defaults, a heap of a few thousand actors (each a greenlet, an inbox, timers, a view) made the
    cyclic collector re-walk it over and over — a profile of bench/ingest.py put ~55 µs of every snapshot's CPU in
    collections, most of it full ones. The tree's start-up objects (imports, config, services, the actors) live as
    long as the process: freeze them out of every later pass (gc.freeze), and collect less often. Cycles are still
    collected. The first start freezes without collecting (a full pass over the freshly imported heap costs ~65 ms
    and finds next to nothing); a later start in the same process (tests start many trees) first thaws and collects,
    so the garbage of earlier trees is never frozen."""
    global _gc_tuned
    if _gc_tuned:
        gc.unfreeze()
        gc.collect()
    _gc_tuned = True
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_gc_tuned = False


def stop_tree(root, timeout: float = 30.0) -> None:
    try:
        root.stop(block=True, timeout=timeout)
    except Exception as exc:  # a stuck child must not keep the process from exiting
        logger.error("shutdown: root supervisor did not stop cleanly: {}", exc)


def serve(services: Services, stop: threading.Event | None = None,
          stopped_before: Callable[[], bool] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop`); returns the process exit code. ``stopped_before``: whether a
    signal came before these handlers were installed (run.py remembers one from its first line on).

    0 after a signal; 70 when the root supervisor gave up (it logged the one CRITICAL line) or the
    tree could not start (one CRITICAL line here). Outside debug mode no traceback reaches stderr."""
    import signal

    if _LOGGING.configured:
        add_secrets(secrets_of(services.config, getattr(services.mixin, "keystore", None)))
        if _LOGGING.debug_log is None:
            path = default_debug_log(services.config)
            if path:
                _open_debug_log(path)
    stop = stop or threading.Event()
    escalation = Escalation(event=stop)
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    if stopped_before is not None and stopped_before():
        stop.set()
    try:
        root = start_tree(services, escalation)
    except Exception as exc:  # noqa: BLE001 - any start failure is one line and exit 70
        _log_traceback(exc, "start failure")
        logger.critical("mmflow cannot start: {}", escalation.reason or describe(exc))
        return EXIT_GAVE_UP
    logger.info("mmflow running: polling {} every {}s; {} pairs configured", services.config.mixin.api_base,
                services.config.mixin.poll_interval, len(services.config.pairs))
    while not stop.wait(timeout=1.0):
        pass
    if escalation.reason:
        # the root supervisor has logged its CRITICAL line with the reason; one is enough
        logger.info("mmflow exiting with status {}: the root supervisor gave up", EXIT_GAVE_UP)
        stop_tree(root)
        return EXIT_GAVE_UP
    logger.info("mmflow stopping (signal)")
    stop_tree(root)
    return 0
