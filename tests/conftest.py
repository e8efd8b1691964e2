"""Shared test configuration.

Under CI (CI=true) hypothesis runs derandomized, so a run's outcome depends only on the code;
locally it keeps exploring new examples (and replays failures from its database).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Native code compiled by the tests goes to a cache folder of this run, not the user's.
if "TRACEJIT_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["TRACEJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tracejit-test-cache-")
