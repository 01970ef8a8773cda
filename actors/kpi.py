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

from decimal import Decimal

from gevent.event import AsyncResult
from loguru import logger

from actors.supervisor import SupervisedActor, describe
from actors.timers import send_after
from domain import kpi
from storage import kpi as kpi_store
from storage import repo
from storage.sql import chunks


WRITE_TIMEOUT = 60.0   # seconds to wait for a round's commit


class SampleKpis:
    """Timer message: take one round of samples."""


class KpiSampler(SupervisedActor):
    def __init__(self, services, *, supervisor=None, child_id=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.interval = services.config.kpi.sample_interval
        self.tracks: dict[str, kpi_store.Track] = {}
        self.rounds = 0
        self.samples = 0
        self._timer = None

    def setup(self) -> None:
        latest = kpi_store.latest_ts()
        if latest is not None:
            # Orders sampled in the last rounds before a stop: those that left running/paused meanwhile still
            # owe their final sample.
            self._load_tracks(kpi_store.last_sample_ends(latest - 2 * self.interval))
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

    def _load_tracks(self, order_ids) -> None:
        """Remember the orders not followed yet from their samples (a few statements per CHUNK orders)."""
        missing = [order_id for order_id in order_ids if order_id not in self.tracks]
        if missing:
            self.tracks.update(kpi_store.tracks_of(missing))

    # ------------------------------------------------------------ one round

    def sample_round(self, now: float) -> int:
        """Sample every running/paused order up to ``now``, and close the samples of orders that left those
        states. Returns how many samples were written. Set-based: the inputs of CHUNK orders are read with a
        few statements, their samples computed by the pure functions of domain/kpi.py and handed to the writer
        as one unit (the units of a round share group commits); an order's memory follows only what was
        committed."""
        orders = kpi_store.sampled_orders()
        self._load_tracks([order.order_id for order in orders])
        jobs: list[tuple[str, str, float, float, kpi_store.Track]] = []   # (order, pair, start, end, its track)
        active = set()
        for order in orders:
            active.add(order.order_id)
            track = self.tracks[order.order_id]
            start = track.end if track.end is not None else max(order.started_at or now, now - self.interval)
            jobs.append((order.order_id, order.pair_id, start, now, track))
        for order_id in [o for o in self.tracks if o not in active]:
            track = self.tracks[order_id]
            left = kpi_store.left_sampling_at(order_id)
            view = repo.load_order(order_id)
            if left is not None and track.end is not None and left > track.end and view is not None:
                jobs.append((order_id, view.pair_id, track.end, min(left, now), track))
            del self.tracks[order_id]   # its last sample: nothing more to follow
        mids: dict[tuple[str, str], Decimal | None] = {}
        pending: list[tuple[list[kpi.Sample], AsyncResult]] = []
        for chunk in chunks(jobs, kpi_store.CHUNK):
            samples = self._samples(chunk, mids)
            if samples:
                pending.append((samples, self.services.writer.submit(kpi_store.write_samples, samples)))
        written = 0
        for samples, result in pending:
            try:
                result.get(timeout=WRITE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - reloaded from the database next round
                orders_of = {sample.order_id for sample in samples}
                for order_id in orders_of:
                    self.tracks.pop(order_id, None)
                logger.warning("kpi: {} samples of {} orders ending by {} not stored: {}", len(samples),
                               len(orders_of), kpi.iso_utc(max(sample.ts for sample in samples)), describe(exc))
                continue
            written += len(samples)
            for sample in samples:
                track = self.tracks.get(sample.order_id)
                if track is not None and (track.end is None or sample.ts > track.end):
                    track.end, track.mid = sample.ts, sample.mid
                    track.counted = track.counted + kpi.TradeTotals(sample.maker_volume, sample.taker_volume,
                                                                    sample.fills)
        self.rounds += 1
        self.samples += written
        return written

    def _samples(self, jobs: list[tuple[str, str, float, float, kpi_store.Track]],
                 mids: dict[tuple[str, str], Decimal | None]) -> list[kpi.Sample]:
        """The samples of each job's [start, end] (one per UTC day), from one read of the jobs' inputs."""
        try:
            inputs = kpi_store.load_inputs([job[0] for job in jobs], min(job[2] for job in jobs),
                                           max(job[3] for job in jobs))
        except Exception as exc:  # noqa: BLE001 - the database said no: these orders are retried next round
            logger.warning("kpi: samples of {} orders not taken: {}", len(jobs), describe(exc))
            logger.bind(debug_only=True).opt(exception=exc).debug("kpi read failure (traceback)")
            return []
        samples: list[kpi.Sample] = []
        for order_id, pair_id, start, end, track in jobs:
            pair = self.services.config.pair(pair_id)
            if pair is None or end <= start:
                continue
            key = (pair.exchange, pair.symbol)
            if key not in mids:
                mids[key] = self._book_mid(pair)
            mine = inputs[order_id]
            mid = mids[key] or track.mid or mine.opening_price
            counted = track.counted
            try:
                for piece_start, piece_end in kpi.day_pieces(start, end):
                    sample = kpi_store.sample_of(order_id, mine, pair.base_symbol, pair.quote_symbol, piece_start,
                                                 piece_end, mid, counted)
                    samples.append(sample)
                    counted = counted + kpi.TradeTotals(sample.maker_volume, sample.taker_volume, sample.fills)
            except Exception as exc:  # noqa: BLE001 - a KPI sample is never worth the service: retried next round
                logger.warning("kpi: order {}: sample {}..{} not taken: {}", order_id, kpi.iso_utc(start),
                               kpi.iso_utc(end), describe(exc))
                logger.bind(debug_only=True).opt(exception=exc).debug("kpi sample failure (traceback)")
        return samples

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
