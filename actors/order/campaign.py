"""Stage 7 of an order: join the campaign for its venue and pair (a local record always; HuFi when
configured), then hand over to the strategy — or, if an exit was asked meanwhile, to the way back."""
from __future__ import annotations

from actors.campaigns import CampaignJoined, JoinForOrder
from actors.order.base import Stage
from actors.protocol import AdvanceLifecycle
from domain.states import OrderState
from storage import repo

CAMPAIGN_STATES = (OrderState.DEPOSIT_CONFIRMED, OrderState.JOINING_CAMPAIGN, OrderState.CAMPAIGN_JOINED)


class CampaignStage(Stage):
    HANDLES = {AdvanceLifecycle: "on_advance", CampaignJoined: "on_joined"}
    __slots__ = ()

    @staticmethod
    def resumes(view) -> bool:
        return view is not None and view.state in CAMPAIGN_STATES

    def resume(self) -> None:
        if self.resumes(self.view):
            self.actor.actor_ref.tell(AdvanceLifecycle())

    def on_advance(self, message: AdvanceLifecycle) -> None:
        self.advance()

    def advance(self) -> None:
        """deposit_confirmed → joining_campaign → campaign_joined → running (resumed after a restart)."""
        if self.view is not None and self.view.exit_requested and self.state in CAMPAIGN_STATES:
            self.actor.exit.carry_out()  # funds are on the exchange now: an exit asked in flight happens
            return
        if self.state is OrderState.DEPOSIT_CONFIRMED:
            self.actor.view = self.write(repo.set_order_state, self.order_id, OrderState.JOINING_CAMPAIGN,
                                         "joining the campaign for " + self.pair.symbol, self.now())
        if self.state is OrderState.JOINING_CAMPAIGN:
            account_cfg = self.services.config.exchange(self.pair.exchange)
            asked = self.services.tell("campaigns", JoinForOrder(
                self.order_id, self.pair.exchange, account_cfg.ccxt_id if account_cfg else self.pair.exchange,
                self.pair.symbol, reply_to=self.actor.actor_ref))
            if not asked:
                self.actor.timers.after("lifecycle", self.services.config.funding.retry_delay, AdvanceLifecycle())
            elif self.services.cluster is not None:
                # asked over the bus: a reply lost with a dying instance is asked for again (joins are idempotent)
                self.actor.timers.after("lifecycle", max(self.services.config.funding.retry_delay,
                                                         2 * self.services.cluster.ttl), AdvanceLifecycle())
            return
        if self.state is OrderState.CAMPAIGN_JOINED:
            self.actor.strategy.start()

    def on_joined(self, message: CampaignJoined) -> None:
        if self.state is not OrderState.JOINING_CAMPAIGN:
            return
        note = f"campaign {message.campaign_id}" + (f" (HuFi {message.hufi_campaign})" if message.hufi_campaign
                                                     else "") + (f": {message.note}" if message.note else "")
        self.actor.view = self.write(repo.set_order_state, self.order_id, OrderState.CAMPAIGN_JOINED, note,
                                     self.now())
        self.log.info("order {}: {}", self.order_id, note)
        self.advance()
