"""The OrderActor: one per order id, owning the order's whole life through its stages.

Its state lives in the database; memory only mirrors the last commit, so a restarted actor loads the
row and every stage resumes from it — the same path as a fresh start. Messages are dispatched by one
table built from the stages' `HANDLES` (message type → handler), no isinstance chains:

    payment   stages 1–4   PaymentsApplied, PaymentsArrived, RetryPending, CheckPayment, PaymentDeadline
    funding   stages 5–6   AdvanceFunding
    campaign  stage 7      AdvanceLifecycle, CampaignJoined
    strategy  stages 8–9   StrategyTick, ExchangeOrderEvents
    topup     add funds    CheckTopUp, AdvanceTopUp
    exit      the way back AdvanceExit, ReturnArrived
    commands  operator     OperatorCommand

Each stage is built when it is first used (`_LazyStage`): an order that waits for its payment holds only its
payment stage, a running one the stages its resume and its messages reached. A message for a stage not built
yet builds it; at the start, a stage is built for its `resume` only when its `resumes(view)` says it has work.

A MovementSettled (the Treasury confirmed a Mixin transfer of this order) goes to the stage that owns
the order's current state (MOVEMENT_OWNERS).
"""
from __future__ import annotations

from loguru import logger

from actors.order.base import Stage
from actors.order.campaign import CampaignStage
from actors.order.commands import CommandStage
from actors.order.exit import ExitStage
from actors.order.funding import FUNDING_STATES, FundingStage
from actors.order.payment import PaymentStage
from actors.order.strategy import StrategyStage
from actors.order.topup import TopUpStage
from actors.pooled import PooledActor
from actors.protocol import MovementSettled, StrategyTick
from actors.supervisor import SupervisedActor
from actors.timers import Timer, send_after
from domain.states import FINAL_STATES, OrderState
from storage import repo

# Which stage hears that a Mixin transfer of the order was confirmed, by the order's state.
MOVEMENT_OWNERS: dict[OrderState, str] = {
    **{s: "funding" for s in FUNDING_STATES},
    OrderState.REFUNDING: "payment",
    OrderState.RUNNING: "topup",
    OrderState.PAUSED: "topup",
    OrderState.STOPPING: "topup",   # added funds still in flight when the exit began
    OrderState.STOPPED: "topup",    # (the top-up stage hands over to the exit once they are credited)
    OrderState.SETTLING: "exit",
}


class NamedTimers:
    """At most one pending timer per name: arming a name again replaces its timer.

    The dict exists only while a timer was ever armed: most idle orders wait on one deadline, some on none."""

    __slots__ = ("_ref", "_timers")

    def __init__(self, ref) -> None:
        self._ref = ref
        self._timers: dict[str, Timer] | None = None

    def after(self, name: str, delay: float, message: object, *, replace: bool = True) -> None:
        if self._timers is None:
            self._timers = {}
        old = self._timers.get(name)
        if old is not None and old.active:
            if not replace:
                return
            old.cancel()
        self._timers[name] = send_after(self._ref, delay, message)

    def active(self, name: str) -> bool:
        timer = self._timers.get(name) if self._timers else None
        return timer is not None and timer.active

    def cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None) if self._timers else None
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in (self._timers or {}).values():
            timer.cancel()
        self._timers = None


class _LazyStage:
    """An OrderActor's stage, built on first use and then kept in the actor's ``__dict__`` under the same name: a
    non-data descriptor, so every later read is a plain attribute read. ``seeded``: the stage takes the recovery's
    strategy seed (``OrderActor._strategy_seed``, set only while the actor starts)."""

    __slots__ = ("cls", "_name", "_seeded")

    def __init__(self, cls: type[Stage], *, seeded: bool = False) -> None:
        self.cls = cls
        self._seeded = seeded
        self._name = ""

    def __set_name__(self, owner, name: str) -> None:
        self._name = name

    def __get__(self, actor, owner=None):
        if actor is None:
            return self
        stage = self.cls(actor, actor._strategy_seed) if self._seeded else self.cls(actor)  # noqa: SLF001
        actor.__dict__[self._name] = stage
        return stage


class OrderActor(PooledActor, SupervisedActor):
    """One per order id; pooled (actors/pooled.py): an order with nothing to do holds no greenlet."""

    def __init__(self, services, order_id: str, pair_id: str, *, supervisor=None, child_id=None, view=None,
                 recovered: bool = False, has_pending: bool | None = None, strategy_seed=None):
        super().__init__(supervisor=supervisor, child_id=child_id)
        self._seed_view: repo.OrderView | None = view  # the order as the commit that started this actor left it
        # recovered: the view came from the recovery's bulk read, not from the poller's commits.
        self._seed_recovered = recovered
        # Whether routed snapshots wait to be applied (the recovery's bulk read knows); None: ask the database.
        self.has_pending = has_pending
        self._view: repo.OrderView | None = None
        # True while the view is the newest the poller's commits told this actor (PaymentsApplied, or the view it
        # started with) and nothing else changed it: the next PaymentsApplied's view is then newer still.
        self.view_from_ingest = False
        self.services = services
        self.order_id = order_id
        self.pair_id = pair_id
        self.pair = None
        self.timers = NamedTimers(self.actor_ref)
        # the recovery's bulk read of its strategy inputs, for the strategy and top-up stages built by the start
        self._strategy_seed = strategy_seed

    # The stages (module docstring), each built when first used; resumed in this order.
    payment = _LazyStage(PaymentStage)
    funding = _LazyStage(FundingStage)
    campaign = _LazyStage(CampaignStage)
    strategy = _LazyStage(StrategyStage, seeded=True)
    topup = _LazyStage(TopUpStage, seeded=True)  # the seed read what its resume asks too
    exit = _LazyStage(ExitStage)
    commands = _LazyStage(CommandStage)

    def built(self, name: str) -> Stage | None:
        """The stage ``name`` if it was built (a read that builds nothing)."""
        return self.__dict__.get(name)

    @property
    def log(self):
        """loguru's logger with the order id bound, made when a line is logged (idle orders log nothing)."""
        return logger.bind(order_id=self.order_id)

    @property
    def view(self) -> repo.OrderView | None:
        """The order as the last commit this actor knows of left it."""
        return self._view

    @view.setter
    def view(self, value: repo.OrderView | None) -> None:
        self._view = value
        self.view_from_ingest = False

    def adopt_ingest_view(self, view: repo.OrderView) -> None:
        self._view = view
        self.view_from_ingest = True

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        try:
            self._start()
        finally:
            self._strategy_seed = None  # used by the start's resume only: a stage built later reads for itself

    def _start(self) -> None:
        if self._seed_view is not None and self._seed_recovered:
            self.view = self._seed_view
        elif self._seed_view is not None:
            self.adopt_ingest_view(self._seed_view)
        else:
            self.view = repo.load_order(self.order_id)
        self._seed_view = None
        if self.view is not None:
            self.pair_id = self.view.pair_id
        self.pair = self.services.config.pair(self.pair_id) if self.pair_id else None
        if self.pair is None:
            self._pair_missing()
            return
        if self.view is not None and self.view.state in FINAL_STATES:
            # Payments that name a final order are refunded with its state as the reason; then nothing to do.
            self.payment.apply_pending_of_final_order()
            self.stop()
            return
        self.resume_stages()

    def resume_stages(self) -> None:
        """Each stage picks up its work from the durable state (start and recovery are one path); a stage not built
        yet is built only if it has work to resume."""
        built = self.__dict__   # (what ``built`` reads: a stage is there once built; 100,000 actors x 7 stages at a start)
        for name, resumes in _RESUMES:   # (the view each time: an earlier stage's resume may have moved the order)
            if name in built or resumes(self._view):
                getattr(self, name).resume()

    def teardown(self) -> None:
        self.timers.cancel_all()

    def on_receive(self, message):
        entry = DISPATCH.get(type(message))
        if entry is None:
            self.log.warning("order {}: unexpected message {!r}", self.order_id, message)
            return None
        owner, handler = entry
        if entry is not _TICK:
            strategy = self.built("strategy")  # (one not built yet has nothing to forget or wake)
            if strategy is not None:
                strategy.changed()  # anything but its own tick may have moved its funds or exchange orders
        handler(getattr(self, owner) if owner else self, message)
        return None

    def on_movement_settled(self, message: MovementSettled) -> None:
        owner = MOVEMENT_OWNERS.get(self.view.state) if self.view is not None else None
        if owner is not None:
            getattr(self, owner).on_movement_settled() if owner != "payment" else self.payment.refunds_settled()

    # ------------------------------------------------------------ shared outcomes

    def attention(self, reason: str) -> None:
        """An operator must decide: the order stops acting on its own, with everything known in the reason."""
        if self.view is not None and self.view.state is not OrderState.ATTENTION:
            self.view = self.services.writer.run(repo.set_order_state, self.order_id, OrderState.ATTENTION,
                                                 reason, self.services.clock())
        self.timers.cancel("tick")
        self.log.error("order {}: needs an operator: {}", self.order_id, reason)

    def _pair_missing(self) -> None:
        self.attention(f"pair {self.pair_id or '?'} is not configured (removed from config?)")


# The stages, by the OrderActor attribute that holds each, in the class's order (resumed in this order).
STAGES: tuple[tuple[str, type[Stage]], ...] = tuple(
    (name, attr.cls) for name, attr in vars(OrderActor).items() if isinstance(attr, _LazyStage))

# (stage attribute, its class's ``resumes``), in the same order: what resume_stages asks of each
_RESUMES = tuple((name, cls.resumes) for name, cls in STAGES)


def build_dispatch(stages) -> dict[type, tuple[str, object]]:
    """message type → (the actor's stage attribute, the stage class's handler function), from every stage's
    HANDLES; a type claimed twice is a bug. Built once for the class, so an order holds no table of its own."""
    table: dict[type, tuple[str, object]] = {}
    for name, cls in stages:
        for message_type, method in cls.HANDLES.items():
            if message_type in table:
                raise TypeError(f"{message_type.__name__} is handled by two stages")
            table[message_type] = (name, getattr(cls, method))
    return table


DISPATCH = build_dispatch(STAGES)
DISPATCH[MovementSettled] = ("", OrderActor.on_movement_settled)  # "": the actor's own handler
_TICK = DISPATCH[StrategyTick]
