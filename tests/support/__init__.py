"""Helpers the tests import: services, servers, accounts, clients, workers, waits.

Nothing here is a fixture the tests get through conftest: `tests/conftest.py`
holds the fixtures and builds them from these modules.
"""
