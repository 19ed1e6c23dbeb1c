#!/usr/bin/env python3
"""The attacks of issue 41 against a served reviewloop binary, each answer printed.

Usage: python3 scripts/probe_attacks.py BINARY [--port 18090]

Makes a fresh database (`probe_attacks`) and data dir, imports the demo, trains a
small model and promotes it, then serves it twice: behind a proxy on this machine
(X-Forwarded-For from 127.0.0.1 trusted where the binary knows the setting), and as
if behind HTTPS. Settings a binary does not know are ignored by it, so the same run
measures an older binary (docs/security.md has the table it gave, before and after).
Only the standard library: stdlib http.client, so paths go out exactly as written.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

DB = "probe_attacks"
PASSWORD = "probe-password-123"


def run(binary, env, *args):
    out = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


SERVERS = []


class Server:
    def __init__(self, binary, env, port, extra_env):
        SERVERS.append(self)
        self.port = port
        log = open(os.path.join(env["REVIEWLOOP_DATA_DIR"], f"serve-{port}.log"), "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--bind", f"127.0.0.1:{port}", "--no-worker"],
            env={**env, **extra_env}, stdout=log, stderr=log)
        for _ in range(100):
            try:
                self.request("GET", "/healthz")
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("the server did not start")

    def request(self, method, path, headers=None, body=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        connection.close()
        return response.status, response.getheaders(), text

    def stop(self):
        self.process.terminate()
        self.process.wait()


def cookies_of(headers):
    return [v for k, v in headers if k.lower() == "set-cookie"]


def cookie_value(headers, name):
    for c in cookies_of(headers):
        if c.startswith(name + "="):
            return c.split(";")[0]
    return None


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


class Browser:
    """A cookie jar and the login form's token, as a browser would hold them."""

    def __init__(self, server, address=None):
        self.server, self.jar = server, {}
        self.address = address

    def headers(self, extra=None):
        h = dict(extra or {})
        if self.jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        if self.address:
            h["X-Forwarded-For"] = self.address
        return h

    def keep(self, headers):
        for c in cookies_of(headers):
            name, value = c.split(";")[0].split("=", 1)
            if value:
                self.jar[name] = value
            else:
                self.jar.pop(name, None)

    def get(self, path):
        status, headers, text = self.server.request("GET", path, self.headers())
        self.keep(headers)
        return status, headers, text

    def post(self, path, form):
        status, headers, text = self.server.request("POST", path, self.headers(), form)
        self.keep(headers)
        return status, headers, text

    def login_form(self):
        _, _, page = self.get("/login")
        return re.search(r'name="csrf" value="([^"]*)"', page).group(1)

    def login(self, username, password):
        token = self.login_form()
        return self.post("/login", {"username": username, "password": password, "csrf": token})

    def csrf(self):
        _, _, page = self.get("/annotate")
        return re.search(r'name="csrf" value="([^"]*)"', page).group(1)


def concurrently(calls):
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def go(i, call):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def tally(statuses):
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return " ".join(f"{n}×{s}" for s, n in sorted(counts.items()))


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = tempfile.mkdtemp(prefix="probe-attacks-")
    env = {**os.environ, "DATABASE_URL": f"postgres://127.0.0.1:5432/{DB}", "REVIEWLOOP_DATA_DIR": data_dir,
           "RUST_LOG": "warn"}
    subprocess.run(["psql", "-h", "127.0.0.1", "-d", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"], check=True)
    run(binary, env, "migrate")
    run(binary, env, "import", os.path.join(root, "demo/fashion-reviews.csv"))
    # Enough labels to train on: the tests' own small set.
    labelled = os.path.join(data_dir, "labelled.csv")
    rows = [("배송이 빨라요", "배송1"), ("배송이 늦어요", "배송-1"), ("색감이 예뻐요", "색상2"), ("그냥 그래요", "없음")]
    with open(labelled, "w") as f:
        f.write("text,labels\n" + "".join(f'{t} {i},"{l}"\n' for i, (t, l) in
                                          ((i, rows[i % 4]) for i in range(60))))
    run(binary, env, "import", labelled)
    for name, role in [("victim", "annotator"), ("someone", "annotator"), ("chief", "admin"), ("eng", "engineer")]:
        run(binary, env, "user", "add", name, "--role", role, "--password", PASSWORD)
    run(binary, env, "train", "--taxonomy", "fashion", "--base", "none", "--name", "probe", "--epochs", "2")
    run(binary, env, "model", "promote", "probe", "--reason", "probe")
    keys = [run(binary, env, "apikey", "create", f"k{i}", "--rate", "3").strip().split()[-1] for i in range(3)]
    behind_proxy = {"REVIEWLOOP_TRUSTED_PROXIES": "127.0.0.1"}
    proxy = Server(binary, env, args.port, behind_proxy)

    def fresh():
        """A new server process for each attack: throttles live in memory, so one
        attack's failures do not answer for the next."""
        nonlocal proxy
        proxy.stop()
        proxy = Server(binary, env, args.port, behind_proxy)

    print(f"# {binary}")

    print("\n## The login form's CSRF check and the path's spelling (no token, no cookie, right password)")
    for path in ["/login", "/%6Cogin", "/login/", "//login", "/LOGIN"]:
        status, headers, _ = proxy.request("POST", path, {}, {"username": "victim", "password": PASSWORD})
        print(f"POST {path}: {status}, session cookie set: {cookie_value(headers, 'rl_session') is not None}")

    fresh()
    print("\n## 30 wrong passwords for one account at once (each with its own login token)")
    guessers = [Browser(proxy) for _ in range(30)]
    tokens = [g.login_form() for g in guessers]
    answers = concurrently([lambda g=g, t=t: g.post("/login", {"username": "someone", "password": "wrong", "csrf": t})[0]
                            for g, t in zip(guessers, tokens)])
    print(f"answers: {tally(answers)} (401: the password was checked)")

    fresh()
    print("\n## One address's failures against everyone else (behind a proxy)")
    for n in range(20):
        Browser(proxy, "203.0.113.7").login(f"nobody{n}", "wrong")
    status, _, _ = Browser(proxy, "198.51.100.2").login("victim", PASSWORD)
    print(f"20 bad logins from 203.0.113.7, then victim's right password from 198.51.100.2: {status}")
    fresh()
    for n in range(10):
        proxy.request("POST", "/api/v1/analyze", {"Authorization": f"Bearer rl_bad{n}", "X-Forwarded-For": "203.0.113.8",
                                                   "Content-Type": "application/json"}, json.dumps({"text": "x"}))
    status, _, _ = proxy.request("POST", "/api/v1/analyze", {"Authorization": f"Bearer {keys[2]}",
                                 "X-Forwarded-For": "198.51.100.3", "Content-Type": "application/json"},
                                 json.dumps({"text": "배송이 빨라요"}))
    print(f"10 bad keys from 203.0.113.8, then a good key never used before from 198.51.100.3: {status}")

    fresh()
    print("\n## The admin kept out by a few guesses")
    owner = Browser(proxy, "198.51.100.4")
    owner.login("chief", PASSWORD)
    for n in range(6):
        Browser(proxy, f"192.0.2.{n + 1}").login("chief", "wrong")
    status_known, _, _ = owner.login("chief", PASSWORD)
    status_new, _, _ = Browser(proxy, "198.51.100.5").login("chief", PASSWORD)
    print(f"6 wrong from 6 addresses, then the right password: the admin's browser {status_known}, "
          f"a new browser {status_new}")

    fresh()
    print("\n## A burst of logins for 40 names at once, from 40 addresses (password checks, memory)")
    rss_before = peak_rss_mb(proxy.process.pid)
    burst = [Browser(proxy, f"10.9.{n // 200}.{n % 200 + 1}") for n in range(40)]
    burst_tokens = [b.login_form() for b in burst]
    answers = concurrently([lambda b=b, t=t, n=n: b.post("/login", {"username": f"ghost{n}", "password": "x", "csrf": t})[0]
                            for n, (b, t) in enumerate(zip(burst, burst_tokens))])
    print(f"answers: {tally(answers)}; server peak RSS {rss_before:.0f} → {peak_rss_mb(proxy.process.pid):.0f} MB")

    fresh()
    print("\n## Refused analysis requests and the key's rate (3 a minute)")
    big = json.dumps({"reviews": [{"text": "배송이 빨라요 색감이 예뻐요 " * 300} for _ in range(64)]})
    answers = [proxy.request("POST", "/api/v1/analyze", {"Authorization": f"Bearer {keys[0]}",
                             "Content-Type": "application/json"}, big)[0] for _ in range(5)]
    print(f"5 requests over the budget: {answers}")
    unknown = json.dumps({"text": "배송이 빨라요", "taxonomy": "no-such-taxonomy"})
    answers = [proxy.request("POST", "/api/v1/analyze", {"Authorization": f"Bearer {keys[1]}",
                             "Content-Type": "application/json"}, unknown)[0] for _ in range(5)]
    print(f"5 requests naming an unknown taxonomy: {answers}")

    fresh()
    print("\n## Smaller items")
    engineer = Browser(proxy, "198.51.100.6")
    engineer.login("eng", PASSWORD)
    csrf = engineer.csrf()
    round_form = {"taxonomy": "fashion", "name": "probe", "size": "3", "sampling": "random", "group_by": "mall"}
    status, _, _ = engineer.post(f"/engineer/rounds?csrf={urllib.parse.quote(csrf)}", round_form)
    print(f"the CSRF token in the query string only: {status}")
    _, _, page = engineer.get("/engineer/import")
    action = re.search(r'<form method="post" action="([^"]*)" enctype', page)
    print(f"the import form's action: {action.group(1) if action else '?'}")
    status, _, _ = engineer.post("/engineer/rounds", {**round_form, "csrf": csrf})
    round_id = max(int(x) for x in re.findall(r"/engineer/rounds/(\d+)", engineer.get("/engineer/rounds")[2]))
    annotator = Browser(proxy, "198.51.100.7")
    annotator.login("victim", PASSWORD)
    status, headers, _ = annotator.get(f"/annotate/rounds/{round_id}/next")
    claimed = subprocess.run(["psql", "-h", "127.0.0.1", "-d", DB, "-tAc", "SELECT count(*) FROM assignments"],
                             capture_output=True, text=True).stdout.strip()
    print(f"GET /annotate/rounds/{round_id}/next: {status}; items claimed: {claimed}")
    acsrf = annotator.csrf()
    status, headers, _ = annotator.post(f"/annotate/rounds/{round_id}/next", {"csrf": acsrf})
    item = header(headers, "location") or ""
    if not item.startswith("/annotate/items/"):
        _, headers, _ = annotator.get(f"/annotate/rounds/{round_id}/next")
        item = header(headers, "location") or ""
    _, _, item_page = annotator.get(item)
    token = re.search(r'name="token" value="([^"]*)"', item_page).group(1)
    keyword = re.search(r'name="k(\d+)"', item_page).group(1)
    engineer.post(f"/engineer/rounds/{round_id}/close", {"csrf": csrf})
    status, _, page = annotator.post(item, {"csrf": acsrf, "token": token, f"k{keyword}": "on", f"s{keyword}": "1"})
    stored = subprocess.run(["psql", "-h", "127.0.0.1", "-d", DB, "-tAc",
                             "SELECT count(*) FROM annotations WHERE annotator_id IS NOT NULL"],
                            capture_output=True, text=True).stdout.strip()
    print(f"an answer after the round closed: {status}; human answers stored: {stored}")
    admin = Browser(proxy, "198.51.100.8")
    admin.login("chief", PASSWORD)
    status, headers, _ = admin.post("/admin/api-keys", {"csrf": admin.csrf(), "name": "shown-once",
                                                        "requests_per_minute": "60"})
    print(f"the page showing a new API key: Cache-Control {header(headers, 'cache-control')}")
    subprocess.run(["psql", "-h", "127.0.0.1", "-d", DB, "-qc",
                    "CREATE FUNCTION refuse_jobs() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                    "'secret detail of jobs_internal'; END; $$ LANGUAGE plpgsql; CREATE TRIGGER refuse_jobs "
                    "BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs();"], check=True)
    status, _, page = engineer.post("/engineer/score", {"csrf": csrf, "taxonomy": "fashion"})
    print(f"a database error while queueing a job: {status}, detail shown: {'secret detail' in page}")
    subprocess.run(["psql", "-h", "127.0.0.1", "-d", DB, "-qc", "DROP TRIGGER refuse_jobs ON jobs"], check=True)
    proxy.stop()

    https = Server(binary, env, args.port + 1, {"REVIEWLOOP_PUBLIC_URL": "https://reviews.example.com",
                                                 "REVIEWLOOP_SECURE_COOKIES": "true"})
    print("\n## Served as https://reviews.example.com (and REVIEWLOOP_SECURE_COOKIES=true)")
    seen = []
    for method, path in [("GET", "/login"), ("GET", "/lang/en")]:
        seen += cookies_of(https.request(method, path)[1])
    browser = Browser(https)
    token = browser.login_form()
    _, headers, _ = https.request("POST", "/login", browser.headers(),
                                  {"username": "victim", "password": PASSWORD, "csrf": token})
    seen += cookies_of(headers)
    for c in seen:
        name = c.split("=")[0]
        print(f"{name}: Secure {'Secure' in c}")
    print(f"Strict-Transport-Security: {header(https.request('GET', '/login')[1], 'strict-transport-security')}")
    https.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in SERVERS:
            server.process.kill()
