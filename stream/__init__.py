"""Streaming runtime: packets, ZeroMQ transport, stage runner, sources, sinks and entry points."""
