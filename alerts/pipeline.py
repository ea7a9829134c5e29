"""The alert pipeline: detector Events in, notifications out, through separate stages.

    handle(events of one poll)
      -> lifecycle (AlertBook: open / escalate / resolve, countwatch_alert_active)
      -> routing (every matching route's receiver; info pages nobody unless a route asks)
      -> grouping (Incident per receiver and cause; group_wait / group_interval / repeat)
      -> suppression (silences, outage inhibits the stalls of its source) and dedup (plan)
      -> outbox (SQLite row written in the same transaction as the state that caused it)
      -> delivery (alerts/delivery.py: one worker per receiver, in order, backoff,
         Retry-After, disable on permanent receiver errors) -> notifier.notify()

Every decision is a log line (`notification.queued|grouped|silenced|skipped|sent|retry|failed`
with receiver, alert_key and reason) and a row of alert_decisions. All times come from the
injected clock; worker sleeps are divided by clock.speed. When the database fails the
pipeline logs, counts countwatch_state_errors_total and carries on in memory (alerts/writethrough.py).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from monitor.clock import Clock
from monitor.config import Config
from monitor.metrics import Metrics
from monitor.model import STOPPAGE, Event, iso_utc

from . import state
from .config import RouteConfig
from .delivery import Delivery
from .grouping import Incident, MemberState, members_for_notification
from .lifecycle import ESCALATED, LOWERED, NEW, OBSERVED, RESOLVED, UNCHANGED, UNKNOWN_RESOLVED, AlertBook, OpenAlert
from .links import render_links
from .matching import cause_of, labels_of, severity_rank
from .writethrough import WriteThrough
from .notification import Notification, alert_key, incident_id, overall_reason
from .notifiers import build_notifier
from .outbox import Outbox, OutboxRow
from .record import DecisionRecord
from .silences import Silence, silenced_by

log = structlog.get_logger("countwatch.alerts")

RESULTS = ("sent", "failed", "retry", "silenced", "grouped", "disabled", "expired")
RETENTION = timedelta(days=7)        # finished outbox rows and decisions kept for the record
SILENCE_REFRESH_WALL_SECONDS = 1.0   # how often the workers re-read run-time silences
MAX_WALL_SLEEP = 0.5                 # workers re-check at least this often (a ManualClock may move)


class AlertPipeline:
    def __init__(self, config: Config, metrics: Metrics, clock: Clock, db_path: Path | str, *, uri: bool = False):
        self.config = config
        self.alerting = config.alerting
        self.metrics = metrics
        self.clock = clock
        self.routes: tuple[RouteConfig, ...] = self.alerting.effective_routes()
        self.receivers = {r.name: r for r in self.alerting.receivers}
        self.notifiers = {name: build_notifier(r, clock) for name, r in self.receivers.items()}
        self._lock = threading.RLock()
        self._wakes = {name: threading.Event() for name in [*self.receivers, "__timers__"]}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.book = AlertBook()
        self.incidents: dict[str, Incident] = {}
        self.outbox = Outbox()
        self.record = DecisionRecord(metrics)
        self._silences: tuple[Silence, ...] = self.alerting.silences
        self._silences_read_at = float("-inf")
        self._last_prune: datetime | None = None
        for name in self.receivers:
            metrics.init_receiver(name, RESULTS)
        self.writethrough = WriteThrough(db_path, uri, metrics, self._snapshot_ops)
        self.delivery = Delivery(self.notifiers, self.outbox, self._lock, self.writethrough, self.record, metrics,
                                 clock, retry_initial=self.alerting.retry_initial,
                                 retry_max=self.alerting.retry_max, give_up_after=self.alerting.give_up_after)
        self._restore(self.writethrough.load())
        self._refresh_silences(force=True)
        self.outbox.export(metrics, clock.now())

    # --- start-up -----------------------------------------------------------------------
    def _restore(self, loaded: dict | None) -> None:
        if not loaded:
            return
        for row in loaded["open"]:
            alert = OpenAlert.from_json(state_json(row["state"]))
            self.book.open[alert.key] = alert
            self._active(alert.event, 1)
        for row in loaded["incidents"]:
            incident = Incident.from_json(state_json(row["state"]))
            if incident.receiver in self.receivers:
                self.incidents[incident.slot] = incident
        for row in loaded["threads"]:
            self.delivery.threads[row["incident"]] = {"channel": row["channel"], "ts": row["ts"]}
        self.outbox.resume_after(loaded["max_seq"])
        for db_row in loaded["outbox"]:
            row = OutboxRow.from_db(db_row)
            if row.receiver not in self.receivers:
                log.warning("notification.failed", receiver=row.receiver, alert_key=row.notification.alert_key,
                            reason=row.notification.reason, notification=row.id,
                            error="receiver no longer configured; left in the outbox")
                continue
            self.outbox.restore(row)
            if row.possible_duplicate:
                log.warning("notification.retry", receiver=row.receiver, alert_key=row.notification.alert_key,
                            reason=row.notification.reason, notification=row.id,
                            error="interrupted while sending; resent as a possible duplicate")
        if self.outbox.pending():
            log.info("alerts.restored", pending=len(self.outbox.pending()), open_alerts=len(self.book.open),
                     incidents=len(self.incidents))

    # --- stage 1-4: events to incidents ---------------------------------------------------
    def handle(self, events: list[Event]) -> None:
        """The events of one poll. Never raises into the poll job."""
        if not events:
            return
        try:
            with self._lock:
                now = self.clock.now()
                self._refresh_silences(force=False)   # a `silence add` of a second ago counts
                ops: list[state.Op] = []
                touched: set[str] = set()
                for event in events:
                    self._apply(event, now, ops, touched)
                self._flush_due(now, ops, touched)
                self.writethrough.commit(ops, "alerts.write")
                self.outbox.export(self.metrics, now)
        except Exception:
            log.error("alerts.error", stage="handle", exc_info=True)
            return
        self._wake_all()

    def _apply(self, event: Event, now: datetime, ops: list, touched: set[str]) -> None:
        transition, before = self.book.apply(event)
        key = alert_key(event)
        if transition == NEW:
            self._active(event, 1)
        elif transition in (ESCALATED, LOWERED):
            self._active(before.event, 0)
            self._active(event, 1)
        elif transition == RESOLVED:
            self._active(before.event, 0)
        if transition in (NEW, ESCALATED, LOWERED, UNCHANGED):
            ops.append(state.put_open(key, self.book.open[key].to_json(), iso_utc(now)))
        elif transition == RESOLVED:
            ops.append(state.delete_open(key))
        if transition == UNKNOWN_RESOLVED:
            log.debug("notification.skipped", receiver="-", alert_key=key, reason="resolved_but_not_open")
            return
        holding = [i for i in self.incidents.values() if key in i.members]
        if transition == RESOLVED:
            for incident in holding:
                incident.add(event, "resolved")
                incident.schedule(now)
                touched.add(incident.slot)
            return
        if transition in (UNCHANGED, LOWERED):
            for incident in holding:   # fresher details for the next repeat; nothing to tell now
                incident.add(event, "firing")
                touched.add(incident.slot)
            return
        status = "observed" if transition == OBSERVED else "firing"
        routed = self._route(event)
        if not routed:
            self.record.decide(ops, now, "-", key, "skipped", "no_route", None, None,
                               f"severity {event.severity} matched no route", level="debug")
        for receiver, route in routed:
            incident = self._incident_for(receiver, route, event, now)
            # An escalation is told at once when it raises what this receiver knows of the
            # incident (warning -> critical); members that follow it up wait group_interval.
            told = incident.told_severity()
            urgent = transition == ESCALATED and (told is None or severity_rank(event.severity) > severity_rank(told))
            incident.add(event, status)
            incident.schedule(now, urgent=urgent)
            touched.add(incident.slot)

    def _route(self, event: Event) -> list[tuple[str, RouteConfig]]:
        """Every matching route's receiver, once (the first matching route's timers apply)."""
        labels = labels_of(event)
        out: dict[str, RouteConfig] = {}
        for route in self.routes:
            if (route.receiver not in out and severity_rank(event.severity) >= severity_rank(route.min_severity)
                    and route.match.matches(labels)):
                out[route.receiver] = route
        return list(out.items())

    def _incident_for(self, receiver: str, route: RouteConfig, event: Event, now: datetime) -> Incident:
        key = alert_key(event)
        labels = labels_of(event)
        group = tuple(self._group_value(name, labels, event) for name in self.alerting.group_by)
        for incident in self.incidents.values():
            if incident.receiver == receiver and key in incident.members:
                return incident
        for incident in self.incidents.values():
            if incident.receiver == receiver and incident.group == group:
                return incident
        repeat = route.repeat_interval or self.alerting.repeat_interval
        if self.receivers[receiver].kind == "alertmanager":
            repeat = min(repeat, self.receivers[receiver].resend)   # Alertmanager wants re-posts
        # One id for the group's incident on every receiver and in every replica: derived from
        # the group and when it began, or taken from the incident another receiver has open.
        began = event.since or event.at
        shared = next((i.id for i in self.incidents.values() if i.group == group), None)
        incident = Incident(
            id=shared or incident_id(group, began), receiver=receiver, group=group, source=event.source, cause=cause_of(event),
            opened_at=now,
            group_wait=self.alerting.group_wait if route.group_wait is None else route.group_wait,
            group_interval=route.group_interval or self.alerting.group_interval, repeat_interval=repeat)
        self.incidents[incident.slot] = incident
        return incident

    def _group_value(self, name: str, labels: dict[str, str], event: Event) -> str:
        """A group label's value. An unreachable site is one incident whatever it serves: the
        outages of sources on one host (two contests of KPU's) group by the host, not by
        source, so on-call is told once that the site is down."""
        if name == "source" and labels["cause"] == "outage":
            try:
                host = self.config.source(event.source).host
            except KeyError:          # an event of a source no longer configured
                return labels[name]
            return f"host {host}"
        return labels[name]

    # --- stage 5: flush incidents into the outbox ---------------------------------------------
    def _flush_due(self, now: datetime, ops: list, touched: set[str], force: bool = False) -> None:
        for incident in list(self.incidents.values()):
            if incident.due_at is None and incident.repeat_due(now) and self._unsent(incident):
                # The receiver has not had the last message yet (Slack down): a reminder would
                # only pile up behind it and arrive as a burst. Next reminder one interval on.
                incident.quiet_since = now
                touched.add(incident.slot)
            if incident.due_at is None and (incident.repeat_due(now) or self._needs_update(incident, now)):
                incident.schedule(now)
            if incident.due_at is not None and (force or incident.due_at <= now):
                self._flush(incident, now, ops)
                touched.add(incident.slot)
        for slot in touched:
            incident = self.incidents.get(slot)
            if incident is not None:
                ops.append(state.put_incident(incident.slot, incident.receiver, incident.to_json(), iso_utc(now)))

    def _unsent(self, incident: Incident) -> bool:
        return any(row.notification.incident == incident.id for row in self.outbox.queues.get(incident.receiver, ()))

    def _needs_update(self, incident: Incident, now: datetime) -> bool:
        """A firing alert this receiver has not been told about (or not at its severity) that
        is no longer silenced or inhibited: tell it now, as Alertmanager does when a silence ends."""
        for member in incident.members.values():
            if member.status != "firing":
                continue
            untold = member.told_status != "firing" or (
                member.told_severity and severity_rank(member.event.severity) > severity_rank(member.told_severity))
            if untold and self._suppressed(member, now) is None:
                return True
        return False

    def _suppressed(self, member: MemberState, now: datetime) -> tuple[str, str] | None:
        event = member.event
        silence = silenced_by(self._silences, labels_of(event), now)
        if silence is not None:
            return "silenced", f"silence {silence.id}" + (f": {silence.comment}" if silence.comment else "")
        if (self.alerting.inhibit_stall_during_outage and event.family == STOPPAGE
                and self.book.outage_open(event.source)):
            return "inhibited", f"outage of source {event.source} is open"
        return None

    def _flush(self, incident: Incident, now: datetime, ops: list) -> None:
        receiver = self.receivers[incident.receiver]
        chosen, skipped = incident.plan(now, lambda m: self._suppressed(m, now), receiver.send_resolved)
        incident.due_at = None
        for member, reason, detail in skipped:
            action = "silenced" if reason in ("silenced", "inhibited") else "skipped"
            self.record.decide(ops, now, receiver.name, alert_key(member.event), action, reason, incident.id, None,
                               detail)
        if chosen:
            incident.mark_told(chosen, now)
            changes = [change for _, change in chosen]
            finished = incident.finished
            status = ("observed" if all(c == "observed" for c in changes)
                      else "resolved" if finished and "resolved" in changes else "firing")
            members = members_for_notification(chosen)
            notification = Notification(
                id=uuid.uuid4().hex, receiver=receiver.name, reason=overall_reason(changes), status=status,
                severity=max((m.event.severity for m in members), key=severity_rank), source=incident.source,
                cause=incident.cause, incident=incident.id, members=members, created_at=now,
                opened_at=incident.opened_at, timezone=self._zone(incident.source),
                links=render_links(self.alerting.links, self.config, members[0].event, incident),
                instance=self.config.instance)
            row = self.outbox.new_row(notification)
            ops.append(row.op())
            self.record.decide(ops, now, receiver.name, notification.alert_key, "queued", notification.reason,
                               incident.id, notification.id, f"{len(members)} alert(s), status {status}",
                               members=len(members), status=status, severity=notification.severity)
            for member in (m for m in members if m is not notification.lead):
                self.record.decide(ops, now, receiver.name, member.key, "grouped", member.change, incident.id,
                                   notification.id, f"in the notification of {notification.alert_key}")
                self.metrics.notifications.labels(receiver=receiver.name, result="grouped").inc()
        if incident.finished:
            del self.incidents[incident.slot]
            ops.append(state.delete_incident(incident.slot))

    def _zone(self, source: str) -> str:
        try:
            return self.config.source(source).timezone
        except KeyError:
            return self.config.timezone

    # --- timers, silences, metrics --------------------------------------------------------------
    def _timer_pass(self, force: bool = False, refresh: bool = False) -> datetime | None:
        """Flush due incidents (all of them when forced), re-read silences, resync a failed
        database. -> the next clock time a timer falls due."""
        with self._lock:
            now = self.clock.now()
            self._refresh_silences(refresh)
            self.writethrough.resync_if_due()
            ops: list[state.Op] = []
            self._flush_due(now, ops, set(), force=force)
            if self._last_prune is None or now - self._last_prune > timedelta(hours=6):
                self._last_prune = now
                ops += state.prune(iso_utc(now - RETENTION))
            self.writethrough.commit(ops, "alerts.write")
            self.outbox.export(self.metrics, now)
            times = [t for i in self.incidents.values() if (t := i.next_wakeup()) is not None]
            return min(times) if times else None

    def _refresh_silences(self, force: bool) -> None:
        if not force and time.monotonic() - self._silences_read_at < SILENCE_REFRESH_WALL_SECONDS:
            return
        self._silences_read_at = time.monotonic()
        runtime = self.writethrough.silences()
        if runtime is not None:
            self._silences = self.alerting.silences + tuple(runtime)

    def _active(self, event: Event, value: int) -> None:
        labels = dict(source=event.source, region=event.region, rule=event.rule, severity=event.severity)
        if value:
            self.metrics.alert_active.labels(**labels).set(1)
        else:
            try:
                self.metrics.alert_active.remove(*labels.values())
            except KeyError:
                pass

    def _snapshot_ops(self) -> list[state.Op]:
        """Everything in memory as statements: how a database that failed is caught up."""
        now = iso_utc(self.clock.now())
        ops: list[state.Op] = [("DELETE FROM alert_open", ()), ("DELETE FROM alert_incidents", ())]
        ops += [state.put_open(k, a.to_json(), now) for k, a in self.book.open.items()]
        ops += [state.put_incident(i.slot, i.receiver, i.to_json(), now) for i in self.incidents.values()]
        ops += [state.put_thread(inc, "", t["channel"], t["ts"]) for inc, t in self.delivery.threads.items()]
        ops += [row.op() for row in self.outbox.pending()]
        return ops

    # --- public: the daemon's interface ------------------------------------------------------
    def tick(self) -> None:
        """One synchronous pass: timers, then every receiver's due notifications."""
        self._timer_pass(refresh=True)
        for receiver in self.receivers:
            self.delivery.deliver_due(receiver)

    def drain(self, timeout_seconds: float) -> bool:
        """Flush every pending group now and send what is queued; True when the outbox is empty
        (disabled receivers keep theirs: False)."""
        deadline = time.monotonic() + timeout_seconds
        self._timer_pass(force=True, refresh=True)
        while True:
            for receiver in self.receivers:
                self.delivery.deliver_due(receiver)
            with self._lock:
                pending = self.outbox.pending()
                if not pending:
                    return True
                if all(row.receiver in self.delivery.disabled for row in pending):
                    return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._timer_loop, name="alerts-timers", daemon=True)]
        self._threads += [threading.Thread(target=self._delivery_loop, args=(name,), name=f"alerts-send-{name}",
                                           daemon=True) for name in self.receivers]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5) -> None:
        self._stop.set()
        self._wake_all()
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self.writethrough.close()

    def records(self) -> dict[str, list[dict]]:
        """The outbox and decisions as stored (tests, `countwatch timeline`)."""
        return self.writethrough.records()

    # --- workers ----------------------------------------------------------------------------
    def _wake_all(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    def _sleep_until(self, moment: datetime | None, wake: threading.Event) -> None:
        wall = MAX_WALL_SLEEP
        if moment is not None:
            wall = min(wall, max(0.01, (moment - self.clock.now()).total_seconds() / self.clock.speed))
        wake.wait(wall)
        wake.clear()

    def _timer_loop(self) -> None:
        wake = self._wakes["__timers__"]
        while not self._stop.is_set():
            try:
                next_at = self._timer_pass()
            except Exception:
                log.error("alerts.error", stage="timers", exc_info=True)
                next_at = None
            self._wake_senders()
            self._sleep_until(next_at, wake)

    def _wake_senders(self) -> None:
        for name in self.receivers:
            self._wakes[name].set()

    def _delivery_loop(self, receiver: str) -> None:
        wake = self._wakes[receiver]
        while not self._stop.is_set():
            try:
                outcome, due = self.delivery.deliver_next(receiver)
            except Exception:
                log.error("alerts.error", stage="delivery", receiver=receiver, exc_info=True)
                outcome, due = "idle", None
            if outcome != "acted":
                self._sleep_until(due, wake)


def state_json(text: str) -> dict:
    return json.loads(text)
