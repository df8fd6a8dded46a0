"""PSTN tests: a stand-in Twilio (twilio_standin.py) and the reference agent."""

from tests.swarm.conftest import agent  # noqa: F401  (the session's reference agent)
