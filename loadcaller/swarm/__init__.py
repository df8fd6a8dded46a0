"""Locust integration: the only package where Locust and gevent appear.

How this works: the process's main thread is gevent's (Locust's runners, user
greenlets, its web UI, our /metrics). One uvloop event loop per process runs
on a native OS thread (:mod:`loadcaller.swarm.bridge`) and owns the
:class:`~loadcaller.engine.Engine`; each Locust user greenlet hands a call to
that loop and waits for its record. Finished call records and generator
health travel to one :class:`~loadcaller.swarm.aggregate.Aggregate` (in this
process, or in the master through ``report_to_master``), which alone writes
the results directory and feeds ``/metrics``.

Import :mod:`loadcaller.swarm.bootstrap` first: it patches gevent the way the
loop thread needs before Locust is imported. :mod:`loadcaller.swarm.shapes` is
pure (no Locust, no gevent) and is used by the profile compiler.
"""
