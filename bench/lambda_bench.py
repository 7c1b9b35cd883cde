"""Init time and peak memory of the Lambda binaries, under a local Lambda Runtime API emulator.

Init: process start to its first `GET /runtime/invocation/next` (the local stand-in for Lambda's Init
Duration), for each function binary and a hello-world lambda_runtime binary built with the same
profile, run alternately so machine noise hits all alike. Peak RSS: the webhook binary answering
signed deliveries against moto's server (seeded by the local stack), read from /proc (VmHWM).

Usage (scripts/bench-lambdas.sh runs it): lambda_bench.py BIN_DIR ROUNDS [--rss DELIVERIES]
(ROUNDS 0 skips the init measurement.)
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

FUNCTIONS = ["hello-lambda", "oauth", "webhook", "settings", "drafts", "sync"]


class Emulator(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.first_next = threading.Event()
        self.generation = 0
        self.events = []  # queued invocation payloads
        self.responses = []
        self.lock = threading.Condition()

    def reset(self, events=()):
        self.first_next = threading.Event()
        with self.lock:
            # Handlers still waiting for a killed process's /next must not take the new events.
            self.generation += 1
            self.events = list(events)
            self.responses = []
            self.lock.notify_all()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        srv = self.server
        srv.first_next.set()
        with srv.lock:
            generation = srv.generation
            while not srv.events or srv.generation != generation:
                if srv.generation != generation or not srv.lock.wait(timeout=30):
                    return
            n, event = srv.events.pop(0)
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{n}")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 9000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        srv = self.server
        with srv.lock:
            srv.responses.append((self.path, payload))
            srv.lock.notify_all()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def env_for(port):
    env = dict(os.environ)
    # Lambda always sets these; the functions take region and credentials from them.
    env.setdefault("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    env.setdefault("AWS_SESSION_TOKEN", "bench")
    env.update(
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_REGION=env.get("AWS_REGION", "us-east-1"),
        TABLE_NAME=env.get("TABLE_NAME", "flowback-local"),
        SECRET_PREFIX=env.get("SECRET_PREFIX", "flowback/local/"),
        PUBLIC_API_URL="http://127.0.0.1:3000",
        DASHBOARD_URL="http://127.0.0.1:5173",
        POSTHOG_CLIENT_ID="bench",
        RUST_LOG="error",
    )
    return env


def measure_init(emulator, binary):
    emulator.reset()
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env_for(emulator.server_address[1]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = emulator.first_next.wait(timeout=20)
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    if not ok:
        raise SystemExit(f"{binary} never asked for an invocation")
    return elapsed * 1000


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def measure_rss(emulator, binary, deliveries):
    sys.path.insert(0, os.path.dirname(__file__))
    from signed_events import webhook_events  # noqa: E402

    events = list(enumerate(webhook_events(deliveries)))
    emulator.reset(events)
    proc = subprocess.Popen([binary], env=env_for(emulator.server_address[1]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    with emulator.lock:
        while len(emulator.responses) < deliveries and time.time() < deadline:
            emulator.lock.wait(timeout=1)
        answered = list(emulator.responses)
    peak = vm_hwm_kb(proc.pid)
    proc.kill()
    proc.wait()
    statuses = {}
    for _, payload in answered:
        try:
            code = json.loads(payload).get("statusCode")
        except ValueError:
            code = "?"
        statuses[code] = statuses.get(code, 0) + 1
    return peak, statuses


def main():
    bin_dir, rounds = sys.argv[1], int(sys.argv[2])
    rss_deliveries = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--rss" else 0
    emulator = Emulator()
    threading.Thread(target=emulator.serve_forever, daemon=True).start()
    if rounds:
        report_init(emulator, bin_dir, rounds)
    if rss_deliveries:
        peak, statuses = measure_rss(emulator, os.path.join(bin_dir, "webhook"), rss_deliveries)
        print(f"\nwebhook peak RSS after {rss_deliveries} signed deliveries: {peak / 1024:.1f} MiB (answers by status: {statuses})")


def report_init(emulator, bin_dir, rounds):
    times = {f: [] for f in FUNCTIONS}
    for _ in range(rounds):
        for f in FUNCTIONS:
            times[f].append(measure_init(emulator, os.path.join(bin_dir, f)))
    base = statistics.median(times["hello-lambda"])
    print(f"init (process start to first /next), median of {rounds} alternating runs")
    print(f"{'binary':<14}{'median ms':>10}{'p90 ms':>9}{'ratio':>8}{'size bytes':>12}")
    for f in FUNCTIONS:
        t = sorted(times[f])
        med = statistics.median(t)
        p90 = t[int(0.9 * (len(t) - 1))]
        size = os.path.getsize(os.path.join(bin_dir, f))
        print(f"{f:<14}{med:>10.2f}{p90:>9.2f}{med / base:>8.2f}{size:>12}")


if __name__ == "__main__":
    main()
