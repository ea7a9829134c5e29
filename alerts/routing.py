"""The route stage: which receivers hear of an event, and on which route's timers.

Every route whose matcher takes the event's labels and whose `min_severity` it reaches names
a receiver; each receiver is named once, and the first route that named it sets its timers
(group_wait, group_interval, repeat_interval). Info events page nobody unless a route asks
for them (alerts/config.py's defaults). No route: the record says so, at debug level.
"""
from __future__ import annotations

from monitor.model import Event, severity_rank

from .config import RouteConfig
from .matching import labels_of


class Router:
    def __init__(self, routes: tuple[RouteConfig, ...]):
        self.routes = routes

    def route(self, event: Event) -> list[tuple[str, RouteConfig]]:
        """(receiver, the first route that named it) for every receiver the event goes to."""
        labels = labels_of(event)
        out: dict[str, RouteConfig] = {}
        for route in self.routes:
            if (route.receiver not in out and severity_rank(event.severity) >= severity_rank(route.min_severity)
                    and route.match.matches(labels)):
                out[route.receiver] = route
        return list(out.items())
