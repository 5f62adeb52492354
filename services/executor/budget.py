"""Request budget and deferred work: Lighter's rate limit per account tier, counted by event time
(the commands of one engine step are one ``sendTxBatch`` request per ``batch_max_txs``),
error 23000 backs off; quote/resting updates without budget are deferred (latest wanted set
kept) and, with failed cancels, refused taker orders and held IOCs, done later by
:meth:`RequestBudget._flush`.

State: ``_budget_log``/``_budget_used`` (weight per step in the rolling minute),
``requests_sent``, ``deferred_updates``, ``rate_limited``, ``backoff_until``, the retry
queues (``_retry_cancels``, ``_cancel_failures``, ``_retry_cancel_all``, ``_retry_markets``),
``_recheck`` (markets where an order finished), ``_flushes`` and ``_idle_until`` (fast path)."""

from __future__ import annotations

from collections import deque

from shared.events import Event

from .common import _NEVER, BUDGET_WINDOW_NS, EPS, OrderCommand, _Out


class RequestBudget:
    """Request budget and deferred work: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_budget(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self._budget_log: deque[tuple[int, int]] = deque()  # (ts ns, weight) per engine step
        self._budget_used = 0
        self.requests_sent = 0
        self.deferred_updates = 0
        self.rate_limited = 0
        self.backoff_until = 0
        self._retry_cancels: dict[int, int] = {}  # coi -> failed sends so far
        self._cancel_failures: dict[int, int] = {}
        self._retry_cancel_all = ""
        self._retry_markets: dict[str, None] = {}
        self._recheck: set[str] = set()  # markets where an order finished: holds may be released
        self._flushes = 0
        self._idle_until = 0  # event time (ns) before which _flush has nothing to do; 0 = not known

    def take_commands(self) -> list[OrderCommand]:
        """The order commands produced since the last call, in the order to execute them.

        The commands of one call are one engine step: the runner sends them together, in
        ``ceil(n / cfg.batch_max_txs)`` ``sendTxBatch`` requests (a single command as
        ``sendTx``), and the engine charges that many requests to its budget at the current
        event time (see :meth:`budget_used`)."""
        cmds, self._commands = self._commands, []
        if cmds:
            self._idle_until = 0  # the budget moved
            requests = -(-len(cmds) // self.cfg.batch_max_txs)
            weight = requests * self.cfg.send_weight()
            self._budget_log.append((self.now, weight))
            self._budget_used += weight
            self.requests_sent += requests
        return cmds

    def charge_requests(self, requests: int = 1) -> None:
        """Charge ``requests`` that the runner sends outside the engine's steps (the dead-man
        switch's scheduled cancel-all) to the budget at the current event time."""
        if requests <= 0:
            return
        self._idle_until = 0
        weight = requests * self.cfg.send_weight()
        self._budget_log.append((self.now, weight))
        self._budget_used += weight
        self.requests_sent += requests

    def budget_limit(self) -> int:
        """The request budget per rolling minute in weight units (0 = not modelled)."""
        return self.cfg.budget_per_minute()

    def budget_used(self) -> int:
        """Weight units charged in the minute of event time ending now (commands taken with
        :meth:`take_commands`)."""
        lo = self.now - BUDGET_WINDOW_NS
        log = self._budget_log
        while log and log[0][0] <= lo:
            self._budget_used -= log.popleft()[1]
        return self._budget_used

    def budget_remaining(self) -> int:
        """Weight units left in the rolling minute (negative when over; the limit itself when
        the budget is not modelled)."""
        return self.budget_limit() - self.budget_used()

    def _quote_budget_ok(self) -> bool:
        """Whether a quote/resting update may send now: not backing off after a 23000, and
        either it joins the current step's open batch or one more request fits in the budget
        minus the reserve kept for cancels and taker orders."""
        if self.now < self.backoff_until:
            return False
        limit = self.budget_limit()
        if limit <= 0:
            return True
        n = len(self._commands)
        batch = self.cfg.batch_max_txs
        if n % batch:
            return True
        need = (n // batch + 1) * self.cfg.send_weight()
        return self.budget_used() + need <= limit * (1.0 - self.cfg.budget_reserve) + EPS

    def _budget_ok_at(self) -> int:
        """The first event time (ns, from now on) at which :meth:`_quote_budget_ok` holds with no
        command queued, if no more commands are taken: the end of the back-off, and the time
        the oldest budget log entries have left the rolling minute so that one more request
        fits under the budget minus the reserve (:data:`_NEVER` if it never fits)."""
        limit = self.budget_limit()
        if limit <= 0:
            return self.backoff_until
        need = self.cfg.send_weight()
        cap = limit * (1.0 - self.cfg.budget_reserve) + EPS
        used = self.budget_used()
        if used + need <= cap:
            return self.backoff_until
        for ts, weight in self._budget_log:
            used -= weight
            if used + need <= cap:
                return max(self.backoff_until, ts + BUDGET_WINDOW_NS)
        return _NEVER

    def _flush_idle(self) -> bool:
        """Whether :meth:`_flush` would do nothing now but count the flush (nothing queued in
        this step, no order finished since the last flush); records in ``_idle_until`` the
        event time (ns) until which that stays so while no other input arrives.

        Its work waits for event time only: retries (failed cancels, cancel-all, refused taker
        orders) for the end of the 23000 back-off, quote updates deferred for budget for
        :meth:`_budget_ok_at`; wanted sets held by the self-trade guard and held taker orders
        wait for an order to finish (a venue report, which calls :meth:`_changed`)."""
        until = _NEVER
        if self._retry_cancels or self._retry_cancel_all or self._retry_markets:
            until = self.backoff_until
        budget = False
        wanted = self._wanted
        for key, why in self._pending.items():
            if key not in wanted:
                until = 0  # _flush drops it
                break
            if why == "budget":
                budget = True
        if budget and until > self.now:
            until = min(until, self._budget_ok_at())
        self._idle_until = until
        return self.now < until

    def _flush(self) -> list[Event]:
        """Work left for a later event, done now if possible (returns the events).

        After a 23000 back-off (event time): re-send failed cancels and cancel-all, re-run the
        markets whose taker order was refused. Markets where one of our orders finished: re-run
        a taker order held by the self-trade guard (sent once no resting order of ours crosses
        it any more) and re-apply wanted sets held back by it. Deferred quote/resting updates:
        re-applied, oldest first, while the budget has room.
        """
        if not (self._pending or self._held or self._retry_cancels or self._retry_cancel_all or self._retry_markets):
            self._recheck.clear()
            return []
        self._flushes += 1
        out = _Out(key=f"flush:{self.now}:{self._flushes}", ts=self.now)
        events: list[Event] = []
        touched: set[str] = set()
        recheck, self._recheck = self._recheck, set()
        if self.now >= self.backoff_until:
            retry, self._retry_cancels = self._retry_cancels, {}
            for coi in retry:
                rec = self.orders.get(coi)
                if rec is not None and rec.live and not rec.cancel_requested:
                    self._cancel(rec, out)
            if self._retry_cancel_all:
                self._commands.append(self.cancel_all_command(self.now, self._retry_cancel_all))
                self._retry_cancel_all = ""
            markets, self._retry_markets = list(self._retry_markets), {}
            for market in markets:
                self._rebalance(market, out, set(), report_clips=False)
                touched.add(market)
        for market in [mk for mk in self._held if mk in recheck]:
            self._rebalance(market, out, set(), report_clips=False)
            touched.add(market)
        for key, why in list(self._pending.items()):
            if key not in self._pending or key not in self._wanted:
                self._pending.pop(key, None)
                continue
            if why == "budget" and not self._quote_budget_ok():
                continue
            if why == "blocked" and key[1] not in recheck and key[1] not in touched:
                continue
            ev, wanted, post_only = self._wanted[key]
            o = _Out(key=f"flush:{self.now}:{self._flushes}:{key[0]}:{key[1]}", ts=self.now, causation_id=ev.id)
            self._set_resting(ev, key[0], key[1], wanted, post_only, o, deferred=True)
            events += o.events
            touched.add(key[1])
        guards = _Out(key=f"flush:{self.now}:{self._flushes}:guards", ts=self.now)
        for market in sorted(touched | (recheck & set(self.markets))):
            self._eval_guards(market, guards)
        return out.events + events + guards.events
