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


@pytest.fixture(scope="session")
def world_dns_args(dane_world, tmp_path_factory) -> list[str]:
    """``dane-monitor`` DNS options for the session's world: its DNS server and anchor."""
    anchor = dane_world.write_trust_anchor(tmp_path_factory.mktemp("ta") / "anchor.ds")
    host, port = dane_world.dns_address
    return ["--resolver", f"{host}:{port}", "--trust-anchor", str(anchor)]


@pytest.fixture(scope="session")
def world_check_args(dane_world, world_dns_args) -> list[str]:
    """``dane-monitor check`` options for the session's world (DNS, SMTP port, 5 s steps)."""
    return [*world_dns_args, "--connect-port", str(dane_world.smtp_port), "--timeout", "5"]
