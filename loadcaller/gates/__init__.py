"""SLO gates: parsed from the profile and ``--gate``, judged on a run's summary.

``parse`` (the gate language), ``evaluate`` (gates against summary.json and
turns.jsonl), ``junit`` (one JUnit test case per gate), ``push`` (final figures
to a Prometheus Pushgateway) and ``compare`` (regressions between two runs).
"""
