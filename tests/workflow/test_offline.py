"""The network guard reaches subprocesses: what a Snakemake run of the tests starts cannot fetch a URL."""

import http.server
import re
import sys
import threading

import pytest

from support.common import OFFLINE, REPO, run_offline

FETCH = """
import sys, urllib.request
try:
    body = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
except Exception as e:
    print(f"BLOCKED {type(e).__name__}: {e}")
else:
    print(f"FETCHED {body}")
"""

FETCH_REQUESTS = """
import sys, requests
try:
    print("FETCHED", requests.get(sys.argv[1], timeout=10).text)
except Exception as e:
    print(f"BLOCKED {type(e).__name__}: {e}")
"""


@pytest.fixture
def local_server():
    """An HTTP server on loopback that answers every GET with 'hello': a URL that is reachable without the guard."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _without_proxies() -> dict:
    return {k: "" for k in OFFLINE if "proxy" in k.lower()}


@pytest.mark.parametrize("client", [FETCH, FETCH_REQUESTS], ids=["urllib", "requests"])
def test_a_guarded_subprocess_cannot_fetch_a_url(local_server, client):
    # the control: the same subprocess without the proxy settings fetches the page
    free = run_offline([sys.executable, "-c", client, local_server], env=_without_proxies(), capture_output=True,
                       text=True, timeout=60)
    assert free.stdout.strip() == "FETCHED hello", free.stdout + free.stderr
    # guarded (as every Snakemake run of the tests is): refused by the closed proxy port, loopback included
    for url in (local_server, "https://huggingface.co/api/models", "http://example.com/"):
        proc = run_offline([sys.executable, "-c", client, url], capture_output=True, text=True, timeout=60)
        assert proc.stdout.startswith("BLOCKED"), (url, proc.stdout, proc.stderr)
        assert "refused" in proc.stdout.lower() or "proxy" in proc.stdout.lower(), proc.stdout


def test_model_hubs_are_offline_in_subprocesses():
    code = ("import huggingface_hub.constants as c, os; "
            "print(c.HF_HUB_OFFLINE, os.environ['TRANSFORMERS_OFFLINE'])")
    proc = run_offline([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "1"], proc.stdout + proc.stderr


# Files that start processes without the guard on purpose: the guard itself (conftest.py and the
# helpers that wrap it, support/common.py) and the SLURM installer (apt-get must reach Debian's mirror).
UNGUARDED = {"conftest.py", "support/common.py", "support/slurm_cluster.py"}
STARTS_A_PROCESS = re.compile(r"\bsubprocess\.(run|Popen|call|check_call|check_output)\(|\bos\.(system|popen)\(")


def test_every_process_a_test_starts_goes_through_the_guard():
    """The guard above only holds for processes started with ``run_offline``: a test that starts
    Snakemake with a bare ``subprocess.run`` would let the whole DAG reach the network."""
    tests = REPO / "tests"
    files = sorted(tests.rglob("*.py"))
    assert len(files) > 30 and any(p.parent != tests for p in files)  # the walk reaches the subfolders
    bare = [f"{p.relative_to(tests)}:{n}" for p in files if p.relative_to(tests).as_posix() not in UNGUARDED
            for n, line in enumerate(p.read_text().splitlines(), 1) if STARTS_A_PROCESS.search(line)]
    assert not bare, f"start these through support.common.run_offline: {bare}"
