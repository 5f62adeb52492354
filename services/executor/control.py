"""Control state: the operator's kill switch, pause/resume and flatten (``Control`` events),
reconciliation and the account limits, and the risk state derived from them (HALTED: killed or
not reconciled; REDUCING: flattening or an account position over ``max_position``; RUNNING),
published as ``RiskState`` on every change. Also the admission of intents (paused strategies,
stale intents).

State: ``killed``, ``paused``, ``paused_all``, ``flattening``, ``reconciled``,
``reconcile_reason``, ``over_limit``, and the derived ``state``/``state_reason``."""

from __future__ import annotations

from shared.events import Control, Event, RiskState, derive_id

from .common import EPS, SOURCE, _Out


class ControlState:
    """Control state: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_control(self, reconciled: bool) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.paused: set[str] = set()
        self.paused_all = False
        # risk state inputs; the published state is derived from them
        self.killed: str | None = None
        self.reconciled = reconciled
        self.reconcile_reason = "" if reconciled else "starting: not reconciled yet"
        self.flattening = False
        self.over_limit: str | None = None
        self.state, self.state_reason = self._derive_state()

    def _control_state(self, ev: Control) -> None:
        """Fold one ``Control`` into the control state (no side effects): ``kill`` sets the kill
        reason; ``pause`` pauses its target (``*`` = all); ``resume *`` clears pauses, the kill and
        a flatten, ``resume <strategy>`` that strategy's pause; ``flatten *`` sets flattening.
        Used live (:meth:`_on_control`) and when the control stream is folded at start-up."""
        who = ev.target
        if ev.command == "kill":
            self.killed = self._kill_reason(ev)
        elif ev.command == "pause":
            if who == "*":
                self.paused_all = True
            else:
                self.paused.add(who)
        elif ev.command == "resume":
            if who == "*":
                self.paused_all = False
                self.paused.clear()
                self.killed = None
                self.flattening = False
            else:
                self.paused.discard(who)
        elif ev.command == "flatten" and who == "*":
            self.flattening = True

    def _on_control(self, ev: Control, out: _Out, dirty: dict[str, tuple[_Out, set[str]]]) -> None:
        """A live ``Control``: the state change (:meth:`_control_state`) and its effects. Kill:
        wanted sets, standing targets, restored wishes, held and retried orders are forgotten and a
        cancel-all is queued. Pause: the target's wanted sets forgotten, its resting orders
        canceled (its stop-losses stay: they protect the position). Flatten: likewise, its
        stop-losses canceled too, then target 0 for the target's strategies (the touched
        markets are added to ``dirty`` for the batch's rebalance)."""
        self._control_state(ev)
        who = None if ev.target == "*" else ev.target
        if ev.command == "kill":
            self._forget_wanted(None, None)
            # standing targets and restored wishes are forgotten too (as when the kill is
            # restored at start-up): after ``resume`` nothing trades until a strategy asks again
            for st in self.strats.values():
                st.target = None
            self._restored = {}
            self._held.clear()
            self._retry_markets.clear()
            self._retry_cancels.clear()
            self._commands.append(self.cancel_all_command(ev.ts_event, ev.id))
        elif ev.command in ("pause", "flatten"):
            self._forget_wanted(who, None)
            self._cancel_quotes(who, None, ev)
        if ev.command == "flatten":
            self._cancel_stops(who, None, ev)  # reduce-only stops of a flat strategy could close another's position
            self._emit_state(out)
            for s, mk in self._flatten_targets({ev.target}):
                prev = dirty.get(mk)
                trig = prev[1] if prev else set()
                trig.add(s)
                dirty[mk] = (out, trig)
            return
        self._check_limits(out)
        self._emit_state(out)

    def _flatten_targets(self, who: set[str], market: str | None = None,
                         not_after: int | None = None) -> list[tuple[str, str]]:
        """A flatten: target 0 for the strategies in ``who`` (``"*"`` = all) that hold a virtual
        position or a standing target, in ``market`` (None = every market), in target-arrival
        order, each as a new target (sequence number; slippage ``default_slippage_bps`` unless
        one is set). ``not_after``: leave strategies whose target is newer than that sequence
        number (a resumed flatten at start-up does not override targets sent since the restore).
        ``flatten *`` first adopts the account position no strategy explains
        (:meth:`_adopt_unattributed`) so that it is closed too. Used by a live ``flatten`` control
        and by a flatten resumed at start-up. Returns the ``(strategy, market)`` pairs set, for the
        rebalance."""
        done: list[tuple[str, str]] = []
        every = "*" in who
        adopted: set[tuple[str, str]] = set()
        if every:
            for mk in sorted(self.markets) if market is None else [market]:
                if self._adopt_unattributed(mk):
                    adopted.add((self.cfg.unattributed_strategy, mk))
        for (s, mk), st in sorted(self.strats.items(), key=lambda kv: kv[1].seq):
            if (market is not None and mk != market) or (not every and s not in who):
                continue
            if (s, mk) not in adopted and ((not_after is not None and st.seq > not_after)
                                           or (st.target is None and abs(st.position) < EPS)):
                continue
            st.target = 0.0
            st.reason = "flatten"
            self._seq += 1
            st.seq = self._seq
            if st.slippage_bps <= 0:
                st.slippage_bps = self.cfg.default_slippage_bps
            done.append((s, mk))
        return done

    def _adopt_unattributed(self, market: str) -> bool:
        """Give ``cfg.unattributed_strategy`` the part of the account position in ``market`` that no
        strategy's virtual position explains (signed base units: account position minus the sum of
        the strategies' positions), e.g. a position the account held before start-up (reconciled
        from the REST account, never attributed). ``flatten *`` then targets 0 for it as for any
        strategy, so the whole account ends flat (seed 002's close-all). Its entry price is the
        mid when one is known (0 otherwise). Nothing is adopted while one of our IOC orders in
        ``market`` is unfilled: a position report may then be ahead of the trade reports that
        attribute it. Returns True if a non-zero part was adopted."""
        if abs(self._account_in_flight(market)) > EPS:
            return False
        attributed = sum(st.position for (_, mk), st in self.strats.items() if mk == market)
        residual = round(self.account_pos.get(market, 0.0) - attributed, 10)
        if abs(residual) < EPS:
            return False
        st = self._strat(self.cfg.unattributed_strategy, market)
        bbo = self.bbo.get(market)
        self._apply(st, residual, (bbo[0] + bbo[1]) / 2.0 if bbo else 0.0)
        return True

    def _derive_state(self) -> tuple[str, str]:
        if self.killed:
            return "halted", self.killed
        if not self.reconciled:
            return "halted", self.reconcile_reason
        if self.flattening:
            return "reducing", "flatten"
        if self.over_limit:
            return "reducing", self.over_limit
        return "running", ""

    def _emit_state(self, out: _Out) -> None:
        state, reason = self._derive_state()
        if (state, reason) != (self.state, self.state_reason):
            self.state, self.state_reason = state, reason
            out.add(RiskState, state=state, reason=reason)

    def _check_limits(self, out: _Out) -> None:
        over = None
        for market, pos in sorted(self.account_pos.items()):
            lim = self.cfg.position_limit(market)
            if abs(pos) > lim * (1 + 1e-9) + EPS:
                over = f"account position {pos:g} {market} exceeds max_position {lim:g}"
                break
        self.over_limit = over
        self._emit_state(out)

    def _paused(self, strategy: str) -> bool:
        return self.paused_all or strategy in self.paused

    def _stale(self, ev: Event) -> bool:
        age = self.cfg.max_intent_age_ms
        return bool(age) and ev.ts_event < self.now - age * 1_000_000

    @staticmethod
    def _kill_reason(ev: Control) -> str:
        return f"kill switch{': ' + ev.reason if ev.reason else ''}"

    def control_summary(self) -> str:
        """The control state in words (logs): ``killed (<reason>)``, ``paused all``, ``paused:
        A,B``, ``flattening``, joined by ``; ``, or ``running`` when none applies."""
        parts = []
        if self.killed:
            parts.append(f"killed ({self.killed})")
        if self.paused_all:
            parts.append("paused all")
        if self.paused:
            parts.append("paused: " + ",".join(sorted(self.paused)))
        if self.flattening:
            parts.append("flattening")
        return "; ".join(parts) or "running"

    def set_reconciled(self, ok: bool, reason: str = "", ts_ns: int | None = None) -> list[Event]:
        """Mark reconciliation done (``ok``) or failed (halted with ``reason``); returns a
        ``RiskState`` when the state changes."""
        self._changed()
        self.reconciled = ok
        self.reconcile_reason = "" if ok else (reason or "reconciliation failed")
        ts = self.now if ts_ns is None else ts_ns
        self._reports += 1
        out = _Out(key=f"reconcile:{ok}:{self._reports}:{ts}", ts=ts)
        self._check_limits(out)
        self._emit_state(out)
        return out.events

    def state_event(self, ts_ns: int) -> RiskState:
        """A ``RiskState`` event stating the current state (e.g. at start)."""
        return RiskState(id=derive_id("state", self.state, self.state_reason, ts_ns), ts_event=ts_ns,
                         source=SOURCE, state=self.state, reason=self.state_reason)  # type: ignore[arg-type]

    def set_account_position(self, market: str, position: float) -> None:
        """Set the account position in ``market`` (signed base units), e.g. from the REST
        account during reconciliation."""
        self._changed()
        if market in self.markets:
            self.account_pos[market] = round(float(position), 10)
