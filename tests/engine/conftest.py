"""Engine units (config, targets, envelope, spool, scheduler, checks, collectors, stats wire,
fast paths): in process, with the local test servers, and the real stack where a unit is a store.
"""

from __future__ import annotations

import pytest

from helpers.sites import LocalSites


@pytest.fixture
def sites(local_sites: LocalSites) -> LocalSites:
    """The session's local test servers (`local_sites`, registered by tests/conftest.py)."""
    return local_sites
