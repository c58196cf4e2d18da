"""Servers and helpers shared by the tests.

- ``capture``: ``CaptureServer``, a threaded loopback HTTP server that records
  every request and answers from a script (for exact wire checks).
- ``api``: helpers around the shipped local API (``infinium.testing.LocalServer``):
  ``ApiServer`` (a fixed port that survives restarts, for outages), ``Http``
  (a raw keep-alive client) and ``trace_body``.

Every server listens on 127.0.0.1 and stops promptly (no 0.5 s poll on
teardown).
"""
