"""The dedup and outbox stages: an incident that falls due is planned (Incident.plan, asking
the suppress stage about each member), and what is left to tell becomes one Notification,
written to the outbox in the same transaction as the incident state that says it was queued.

An incident falls due when its group_wait or group_interval ends, when a repeat is due (unless
the receiver has not had the last message yet: a reminder would only pile up behind it), or
when an alert it holds can be told now that was not (a silence ended, the inhibiting outage
resolved), as Alertmanager does. Every member sent or skipped is a decision in the record.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from monitor.config import Config
from monitor.metrics import Metrics
from monitor.model import iso_utc, severity_rank

from . import state
from .grouping import Grouper, Incident, members_for_notification
from .links import render_links
from .notification import Notification, alert_key, overall_reason
from .outbox import Outbox
from .record import DecisionRecord
from .suppression import Suppressor


class Flusher:
    def __init__(self, grouper: Grouper, suppressor: Suppressor, outbox: Outbox, record: DecisionRecord,
                 metrics: Metrics, config: Config):
        """`config`: each source's zone and URL (for links), the instance name and the
        `[alerting.links]` templates a notification carries."""
        self.grouper = grouper
        self.suppressor = suppressor
        self.outbox = outbox
        self.record = record
        self.metrics = metrics
        self.config = config

    def flush_due(self, now: datetime, ops: list[state.Op], touched: set[str], force: bool = False) -> None:
        """Flush every incident due (all that wait, when forced); the state of every incident
        in `touched` (slots) and of those flushed goes into `ops`."""
        incidents = self.grouper.incidents
        for incident in list(incidents.values()):
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
            incident = incidents.get(slot)
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
            if untold and self.suppressor.suppressed(member.event, now) is None:
                return True
        return False

    def _flush(self, incident: Incident, now: datetime, ops: list[state.Op]) -> None:
        receiver = self.grouper.receivers[incident.receiver]
        chosen, skipped = incident.plan(now, lambda m: self.suppressor.suppressed(m.event, now),
                                        receiver.send_resolved)
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
            configured = self._source(incident.source)
            notification = Notification(
                id=uuid.uuid4().hex, receiver=receiver.name, reason=overall_reason(changes), status=status,
                severity=max((m.event.severity for m in members), key=severity_rank), source=incident.source,
                cause=incident.cause, incident=incident.id, members=members, created_at=now,
                opened_at=incident.opened_at, timezone=configured.timezone if configured is not None else self.config.timezone,
                units=configured.units if configured is not None else "TPS",
                title=configured.display_name if configured is not None else None,
                links=render_links(self.config.alerting.links, self.config, members[0].event, incident),
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
            self.grouper.close(incident)
            ops.append(state.delete_incident(incident.slot))

    def _source(self, source: str):
        """The source's configuration (its zone, units and display name), None for a source
        the config no longer names (an incident restored after a reload dropped it)."""
        try:
            return self.config.source(source)
        except KeyError:
            return None
