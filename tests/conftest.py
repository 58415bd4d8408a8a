import os
import shutil

import pytest

# The tools that confirm our world independently; CI sets DANE_REQUIRE_TOOLS=1 so that a
# missing one fails the run instead of skipping the tests that need it.
REQUIRED_TOOLS = ("delv", "openssl", "unbound")


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("DANE_REQUIRE_TOOLS") == "1":
        path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t, path=path) is None]
        if missing:
            raise pytest.UsageError(f"DANE_REQUIRE_TOOLS=1 but missing: {', '.join(missing)}")
