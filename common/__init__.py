"""Leaves every process shares: settings, keys, logs, metrics, errors and the wire protocol.

Nothing here imports anything else of canvasflow (an import-linter contract
checks it), so server/, tasks/ and db/ can all use these without a back-edge.
"""
