"""Operator commands as the order's actor carries them out, by a table: pause, resume, exit, set-params,
resolve (and `stop`, kept as an alias of pause). Each writes its outcome on the command row."""
from __future__ import annotations

from actors.order.base import Stage
from actors.protocol import OperatorCommand
from domain.resolve import ResolveRefused, check_resolve
from domain.states import FINAL_STATES, OrderState
from storage import commands, exit_repo, repo
from storage.statements import order_statement


class CommandStage(Stage):
    HANDLES = {OperatorCommand: "on_command"}
    __slots__ = ()

    @staticmethod
    def resumes(view) -> bool:
        return False  # nothing to resume: a command still without an outcome is delivered again

    def on_command(self, message: OperatorCommand) -> None:
        args = dict(message.args)
        handler = {"pause": self._pause, "stop": self._pause, "resume": self._resume, "exit": self._exit,
                   "set-params": self._set_params, "resolve": self._resolve}.get(message.command)
        if self.view is None:
            result = "refused: no such order"
        elif handler is None:
            result = f"refused: unknown command {message.command!r}"
        elif self.state in FINAL_STATES:
            result = f"refused: order is {self.state}"
        else:
            result = handler(args)
        self.write(commands.finish, message.command_id, result, self.now())
        (self.log.info if result.startswith("done") else self.log.warning)(
            "order {}: operator {} → {}", self.order_id, message.command, result)

    def _reason(self, args: dict, default: str) -> str:
        return str(args.get("reason") or default)

    def _pause(self, args: dict) -> str:
        return self.actor.strategy.pause(self._reason(args, "operator pause"))

    def _resume(self, args: dict) -> str:
        return self.actor.strategy.resume_quoting(self._reason(args, "operator resume"))

    def _exit(self, args: dict) -> str:
        # the owner may ask through the API (its exit command says so); the CLI's is the operator's
        if args.get("source") == "owner":
            return self.actor.exit.request("owner", self._reason(args, "the owner asked for an exit"))
        return self.actor.exit.request("operator", self._reason(args, "an operator asked for an exit"))

    def _set_params(self, args: dict) -> str:
        overrides = {k: v for k, v in args.items()}
        if not overrides:
            return "refused: no parameters given"
        return self.actor.strategy.set_params(overrides)

    def _resolve(self, args: dict) -> str:
        target, reason = args.get("to"), self._reason(args, "")
        if not reason:
            return "refused: a reason is required"
        facts = commands.resolve_facts(self.order_id, self.pair.exchange)
        try:
            effect = check_resolve(facts, target)
        except ResolveRefused as exc:
            return f"refused: {exc}"
        target = OrderState(target)
        now = self.now()
        note = f"resolved by an operator: {reason}"
        if target is OrderState.REFUNDING:
            self.actor.payment.refund_all(note, "operator")
        elif target in (OrderState.SETTLED, OrderState.REFUNDED):
            statement = order_statement(self.order_id, self.services.config, final=True)
            self.actor.view = self.write(exit_repo.close_order, self.order_id, target, note + " (closed by hand)",
                                         statement.as_dict() if statement else {}, now)
            self.actor.stop()
        else:
            if target is OrderState.PAYMENT_PENDING:
                self.write(_restart_deadline, self.order_id, now + self.services.config.payments.timeout)
            self.actor.view = self.write(exit_repo.transition, self.order_id, target, note, now)
            if target is OrderState.STOPPING:
                self.actor.view = self.write(exit_repo.request_exit, self.order_id, "operator", note, now)
            self.actor.resume_stages()
        return f"done: {target} — {effect}"


def _restart_deadline(order_id: str, deadline_at: float) -> None:
    repo.Order.update(deadline_at=deadline_at).where(repo.Order.order_id == order_id).execute()
