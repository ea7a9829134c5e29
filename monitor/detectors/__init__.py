"""Detectors: small pure rules over a series' history, and the Judge that runs them.

    from monitor.detectors import Judge, SeriesState
    judge = Judge(config)
    state = judge.restore(source, region, blob)      # blob from state.to_json(), or None
    events = judge.observe(state, poll)

docs/detection.md explains each rule, its thresholds and how they were evaluated.
"""
from .history import History, Reading
from .judge import Judge
from .options import DetectionOptions, parse_detection_options
from .rules import RULE_CLASSES, register, unregister
from .series import SeriesState
from .thresholds import Thresholds

__all__ = ["DetectionOptions", "History", "Judge", "RULE_CLASSES", "Reading", "SeriesState", "Thresholds",
           "parse_detection_options", "register", "unregister"]
