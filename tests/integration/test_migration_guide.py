"""Every command in docs/migration.md, run as written (only the listening
address and the billing port are moved, so that runs do not collide), and
every mount it names answers."""
import os
import re
import shlex
import socket

import pytest
import requests

from conftest import ROOT, Server, poll, server_env

GUIDE = os.path.join(ROOT, "docs", "migration.md")


def guide_commands():
    with open(GUIDE) as f:
        text = f.read()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("build/trestle ")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_guide_has_a_command_per_step():
    cmds = guide_commands()
    assert len(cmds) == 6, cmds
    assert any("/v2=newapi:app" in c and "proxy:" in c for c in cmds)
    assert any("/billing=newbilling:app" in c for c in cmds)
    assert any("--config examples/migration/trestle.toml" in c for c in cmds)
    assert any("--config examples/migration/prove.toml" in c for c in cmds)


@pytest.mark.parametrize("command", sorted(set(guide_commands())))
def test_guide_command_works(command):
    port = free_port()
    args = shlex.split(command.replace("9001", str(port)))
    assert args[0] == "build/trestle"
    if "--config" in args:
        # The file's proxy points at 9001: replace that mount from the command line.
        args.append("/billing=proxy:http://127.0.0.1:%d" % port)
    srv = Server(args[1:] + ["--bind", "127.0.0.1:0"], ROOT, server_env({"BILLING_PORT": str(port)}))
    try:
        assert requests.get(srv.url + "/", timeout=10).status_code == 200
        assert requests.get(srv.url + "/health", timeout=10).json() == {"ok": True}
        if "/static=" in command or "--config" in command:
            r = requests.get(srv.url + "/static/style.css", timeout=10)
            assert r.status_code == 200 and "ETag" in r.headers
        if "/v2=" in command or "--config" in command:
            assert requests.get(srv.url + "/v2/items", timeout=10).json()["href"] == "/v2/items"
        if "proxy:" in command or "--config" in command:
            assert poll(lambda: requests.get(srv.url + "/billing/health", timeout=2).status_code == 200, timeout=20)
        if "prove.toml" in command:
            # Step 4: the port's deliberate bug is found on Ada's summary only.
            assert requests.get(srv.url + "/summary/alan", timeout=10).json()["due"] == 42.0
            assert requests.get(srv.url + "/summary/ada", timeout=10).json()["due"] == 75.5

            def verdicts():
                text = requests.get(srv.url + "/metrics", timeout=10).text
                return {m.group(1): float(m.group(2)) for m in re.finditer(
                    r'^trestle_shadow_requests_total\{mount="/",route="GET /summary/\*",verdict="(\w+)"\} (\S+)$', text, re.M)}
            assert poll(lambda: sum(verdicts().values()) >= 2, timeout=20), verdicts()
            assert verdicts() == {"match": 1, "mismatch": 1, "error": 0}
        if "newbilling" in command:
            r = requests.get(srv.url + "/billing/invoices?user=alan", timeout=10).json()
            assert r["invoices"][0]["id"] == "INV-2001"
    finally:
        srv.stop()
