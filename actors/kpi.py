"""KpiSampler: every ``[kpi] sample_interval`` seconds, one KpiSample per running or paused order.

A child of the root supervisor (the last one: its restart touches nobody else). Timed by
``actors.timers.send_after`` on wall-clock multiples of the interval, so samples of all orders share
their end times. Everything it needs is in the database — the order's state history, its exchange orders
and when each rested on the book (kpi_quote_span), its fills and ledger — except the mid, which it takes
from the gateway's shared book cache (no extra request while the strategy keeps it fresh); without one, the
order's previous mid, then its opening price, stand in.

Crash-only: nothing is kept that the database does not have. On start it resumes each order from its last
sample's end; an order that left running/paused since its last sample gets one final sample up to the
moment it left. A sample that fails (a bug, the database) is one WARNING line and the next round tries
again from the same start — the sampler never takes the service down.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gevent.event import AsyncResult
from loguru import logger

from actors.supervisor import SupervisedActor, describe
from actors.timers import send_after
from domain import kpi
from storage import kpi as kpi_store
from storage import repo


WRITE_TIMEOUT = 60.0   # seconds to wait for a round's commit


class SampleKpis:
    """Timer message: take one round of samples."""


@dataclass
class _Track:
    end: float | None              # the last sample's end: the next sample starts there
    counted: kpi.TradeTotals       # volume and fills already in the order's samples
    mid: Decimal | None            # the last mid known for the order


class KpiSampler(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.interval = services.config.kpi.sample_interval
        self.tracks: dict[str, _Track] = {}
        self.rounds = 0
        self.samples = 0
        self._timer = None

    def setup(self) -> None:
        latest = kpi_store.latest_ts()
        if latest is not None:
            # Orders sampled in the last rounds before a stop: those that left running/paused meanwhile still
            # owe their final sample.
            for order_id in kpi_store.last_sample_ends(latest - 2 * self.interval):
                self._track(order_id)
        self._schedule()
        logger.info("kpi: sampling running and paused orders every {:g}s", self.interval)

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def on_receive(self, message):
        if isinstance(message, SampleKpis):
            try:
                self.sample_round(self.services.clock())
            except Exception as exc:  # noqa: BLE001 - the database said no: the next round starts from the same place
                logger.warning("kpi: sampling round failed: {}", describe(exc))
                logger.bind(debug_only=True).opt(exception=exc).debug("kpi round failure (traceback)")
            finally:
                self._schedule()
        else:
            logger.warning("kpi: unexpected message {!r}", message)

    def _schedule(self) -> None:
        now = self.services.clock()
        self._timer = send_after(self.actor_ref, self.interval - now % self.interval, SampleKpis())

    def _track(self, order_id: str) -> _Track:
        track = self.tracks.get(order_id)
        if track is None:
            last = kpi_store.last_sample(order_id)
            track = self.tracks[order_id] = _Track(end=last.ts if last else None,
                                                   counted=kpi_store.counted_trades(order_id),
                                                   mid=last.mid if last else None)
        return track

    # ------------------------------------------------------------ one round

    def sample_round(self, now: float) -> int:
        """Sample every running/paused order up to ``now``, and close the samples of orders that left those
        states. Returns how many samples were written. The samples of a round go to the writer together (one
        group commit for all orders); an order's memory follows only what was committed."""
        mids: dict[tuple[str, str], Decimal | None] = {}
        pending: list[tuple[str, kpi.Sample, AsyncResult]] = []
        active = set()
        for order in kpi_store.sampled_orders():
            active.add(order.order_id)
            track = self._track(order.order_id)
            start = track.end if track.end is not None else max(order.started_at or now, now - self.interval)
            pending += self._sample(order.order_id, order.pair_id, start, now, mids)
        for order_id in [o for o in self.tracks if o not in active]:
            track = self.tracks[order_id]
            left = kpi_store.left_sampling_at(order_id)
            view = repo.load_order(order_id)
            if left is not None and track.end is not None and left > track.end and view is not None:
                pending += self._sample(order_id, view.pair_id, track.end, min(left, now), mids)
            del self.tracks[order_id]   # its last sample: nothing more to follow
        written = 0
        for order_id, sample, result in pending:
            try:
                result.get(timeout=WRITE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - reloaded from the database next round
                self.tracks.pop(order_id, None)
                logger.warning("kpi: order {}: sample ending {} not stored: {}", order_id, kpi.iso_utc(sample.ts),
                               describe(exc))
                continue
            written += 1
            track = self.tracks.get(order_id)
            if track is not None and (track.end is None or sample.ts > track.end):
                track.end, track.mid = sample.ts, sample.mid
                track.counted = track.counted + kpi.TradeTotals(sample.maker_volume, sample.taker_volume,
                                                                sample.fills)
        self.rounds += 1
        self.samples += written
        return written

    def _sample(self, order_id: str, pair_id: str, start: float, end: float,
                mids: dict[tuple[str, str], Decimal | None]) -> list[tuple[str, kpi.Sample, AsyncResult]]:
        """Compute the order's samples of [start, end] (one per UTC day) and hand them to the writer."""
        pair = self.services.config.pair(pair_id)
        if pair is None or end <= start:
            return []
        track = self._track(order_id)
        key = (pair.exchange, pair.symbol)
        if key not in mids:
            mids[key] = self._book_mid(pair)
        mid = mids[key] or track.mid or repo.opening_price(order_id)
        counted = track.counted
        submitted = []
        try:
            for piece_start, piece_end in kpi.day_pieces(start, end):
                sample = kpi_store.compute_sample(order_id, pair.base_symbol, pair.quote_symbol, piece_start,
                                                  piece_end, mid, counted)
                submitted.append((order_id, sample, self.services.writer.submit(kpi_store.write_sample, sample)))
                counted = counted + kpi.TradeTotals(sample.maker_volume, sample.taker_volume, sample.fills)
        except Exception as exc:  # noqa: BLE001 - a KPI sample is never worth the service: retried next round
            logger.warning("kpi: order {}: sample {}..{} not taken: {}", order_id, kpi.iso_utc(start),
                           kpi.iso_utc(end), describe(exc))
            logger.bind(debug_only=True).opt(exception=exc).debug("kpi sample failure (traceback)")
        return submitted

    def _book_mid(self, pair) -> Decimal | None:
        """(best bid + best ask) / 2 from the shared book cache (at most one interval old); None if unknown."""
        cache = (getattr(self.services, "book_caches", None) or {}).get(pair.exchange)
        if cache is None:
            return None
        try:
            book = cache.book(pair.symbol, max_age=self.interval)
        except Exception as exc:  # noqa: BLE001 - the mid is optional: the last known one stands in
            logger.debug("kpi: no book for {} on {}: {}", pair.symbol, pair.exchange, describe(exc))
            return None
        if not book.bids or not book.asks:
            return None
        return (Decimal(book.bids[0][0]) + Decimal(book.asks[0][0])) / 2
