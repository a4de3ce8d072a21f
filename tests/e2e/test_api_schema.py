"""The management API fuzzed from its own OpenAPI document against the real binary.

Schemathesis (PyPI) reads `/api/openapi.json` from a running Routerly, generates valid and
invalid requests for every documented operation, and checks every answer: no 5xx, status
codes, content types, headers and bodies as documented, invalid data refused, valid data
accepted (with the one exception in `schemathesis.toml`, said why there), authentication
enforced. Each documented operation is tested as the admin (through an admin API key) and as
a viewer (a session of a user with the global `viewer` role). As more of `/api` is typed, the
document grows and so does what this test covers.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from conftest import Routerly

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "schemathesis"


def run_schemathesis(routerly: Routerly, bearer: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{routerly.url}/api/openapi.json",
            "--header", f"Authorization: Bearer {bearer}",
            "--max-examples", "50", "--generation-deterministic",
            "--request-timeout", "10", "--report", "ndjson", "--report-ndjson-path", str(report),
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, f"schemathesis found problems:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    # The run tested every documented operation (a run that reached none would also pass);
    # the document itself is read first, and tested too or not depending on the run.
    document = httpx.get(f"{routerly.url}/api/openapi.json", timeout=10).json()
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    tested = set(re.findall(r'"label":\s*"([A-Z]+ /[^"]*)"', report.read_text()))
    assert documented - {"GET /api/openapi.json"} <= tested <= documented, (sorted(documented), sorted(tested))


def test_every_documented_operation_survives_schemathesis_as_admin(routerly: Routerly, tmp_path: Path):
    key = json.loads(routerly.cli("auth", "api-key", "create", "--name", "schemathesis", "--json"))["key"]
    run_schemathesis(routerly, key, tmp_path)
    # The service is still up and still answers the CLI.
    assert routerly.process.poll() is None
    assert httpx.get(f"{routerly.url}/health", timeout=10).status_code == 200


def test_every_documented_operation_survives_schemathesis_as_a_viewer(routerly: Routerly, tmp_path: Path):
    email, password = "viewer-schemathesis@example.com", "viewer password 12345"
    routerly.cli("user", "add", "--email", email, "--password", password, "--role", "viewer")
    # From another loopback address: the admin run's fuzzed logins may have used up
    # 127.0.0.1's failed logins (20 per 15 minutes per address, whatever the account).
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10) as client:
        session = client.post(f"{routerly.url}/api/auth/login", json={"email": email, "password": password})
    assert session.status_code == 200, session.text
    run_schemathesis(routerly, session.json()["access_token"], tmp_path)
    assert routerly.process.poll() is None
