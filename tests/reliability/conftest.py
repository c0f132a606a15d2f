"""tests/reliability: faults injected for real into real Ray (a trial's process killed,
a node of a local multi-node cluster removed) and what the run makes of them. Every test
here needs Ray: each is marked ``integration``, like tests/integration. The single-node
ones use the session's ``ray_cluster`` (tests/conftest.py); a multi-node cluster runs in
a child process, as in tests/integration/test_two_nodes.py."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
