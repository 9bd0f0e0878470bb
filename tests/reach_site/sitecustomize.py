"""Imported at start-up by the Python subprocesses the tests start (tests/helpers.child_env puts
this folder on their PYTHONPATH): the same audit as the test process (tests/reach.py)."""

import os
import sys

if os.environ.get("RANKROBUST_TEST_REACH_LOG"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import reach

        reach.install(os.environ["RANKROBUST_TEST_REACH_LOG"])
    finally:
        sys.path.pop(0)
