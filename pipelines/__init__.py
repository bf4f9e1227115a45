"""Clip buffers and composed pipeline graphs built on :mod:`stream` and :mod:`engines`."""
