#!/usr/bin/env python3
"""reachd's benchmark (README "Performance").

Builds reachd in release mode, starts its own stack on free loopback ports
(PostgreSQL, Redis, embedded Kafka, two dev HTTP providers) and measures through
the public doors, all in one run:
  campaign  a campaign task on Kafka to N recipients (100 000 and 1 000 000),
            sms 60 / push 30 / email 10 over HTTP providers, batch 500:
            task accepted -> last row, messages/s, peak RSS and CPU of reachd,
            CPU of PostgreSQL, Redis and the provider, machine busy share
  trigger   10 000 events/s for 30 s on reach.events: publish -> provider
            latency p50/p99/max and the rate sustained; it starts on a settled
            database (VACUUM ANALYZE and CHECKPOINT after the campaigns)
  delay     1 000 000 delayed sends due at once, two schedulers
  peer      the same 100 000 delayed jobs with arq (PyPI) on the same Redis
  api       during a campaign of the largest size of its own (after the measured
            ones, so they run alone): GET /v1/campaigns/{id}, 1 000 requests at
            50 in flight and 1 000 at once, then wrk: latency p50/p95/p99/max
  limits    ../shared/bench/limits.sh: every figure as a ratio of its ceiling
Prints a table and writes bench-results.json; --profile adds perf profiles.
"""
import argparse, glob, http.client, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REACHD = os.path.join(ROOT, ".build", "release", "reachd")


def say(text):
    print(f"\033[1m==> {text}\033[0m", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sh(script, **env):
    """Runs bash with scripts/lib.sh sourced."""
    full = dict(os.environ, **{k: str(v) for k, v in env.items()})
    subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lib.sh'; {script}"], check=True, env=full)


def recipients_sql(n):
    """Seeds n recipients u00000001… with a phone, an e-mail, a push token and attrs.level."""
    return f"""
        INSERT INTO reach.recipients (user_id, name, phone, email, push_token, timezone, attrs)
        SELECT 'u' || lpad(g::text, 8, '0'), 'User ' || g, '138' || lpad(g::text, 8, '0'), 'user' || g || '@example.com',
               'push-' || g, 'UTC', jsonb_build_object('level', g % 6)
        FROM generate_series(1, {n}) g"""


def start_dev_kafka(binary, directory, partitions=4):
    """`reachd dev-kafka` in the background: (process, bootstrap address it printed first)."""
    out = open(f"{directory}/kafka.out", "w+")
    proc = subprocess.Popen([binary, "dev-kafka", "--partitions", str(partitions)], stdout=out, stderr=subprocess.DEVNULL)
    for _ in range(100):
        out.seek(0)
        line = out.readline().strip()
        if line:
            return proc, line
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the embedded Kafka did not start")


def pg_bin():
    """PostgreSQL's own binaries (Debian's `psql` is a Perl wrapper: its start-up
    cost showed in the machine profile when polled every 0.2 s)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    return found[-1] if found else ""


PSQL = os.path.join(pg_bin(), "psql") if pg_bin() else "psql"


def psql(port, sql):
    out = subprocess.run([PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "reach", "-d", "reach", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def proc_stats(pid):
    """Peak RSS (MB) and CPU seconds of a live process."""
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm / 1024, (int(fields[11]) + int(fields[12])) / ticks


def machine_busy():
    """(busy, total) jiffies of all cores from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def process_cpu(pattern):
    """CPU seconds used so far by every process whose command line contains `pattern`."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if pattern.encode() not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return total


def start_perf(pid, name):
    return subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o", f"/tmp/reach-perf-{name}.data"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_perf(perf, name):
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    report = ""
    for mode in ["--no-children", "--children"]:
        report += subprocess.run(["perf", "report", "-i", f"/tmp/reach-perf-{name}.data", mode, "--sort", "dso,symbol",
                                  "--stdio", "-g", "none", "--percent-limit", "1"], capture_output=True, text=True).stdout
    out = os.path.join(ROOT, f"bench-profile-{name}.txt")
    with open(out, "w") as f:
        f.write(report)
    say(f"profile of reachd written to {out}")


class Stack:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="reach-bench-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.pg, self.redis, self.provider, self.http = free_port(), free_port(), free_port(), free_port()
        self.latency_provider = free_port()
        self.procs = []

    def start(self):
        say(f"starting PostgreSQL :{self.pg}, Redis :{self.redis}, embedded Kafka, dev provider :{self.provider}")
        sh(f"start_postgres '{self.dir}/pg' {self.pg}")
        sh(f"start_redis '{self.dir}/redis' {self.redis}")
        proc, self.kafka = start_dev_kafka(REACHD, self.dir)
        self.procs.append(proc)
        self.procs.append(subprocess.Popen([REACHD, "dev-provider", "--port", str(self.provider)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen([REACHD, "dev-provider", "--port", str(self.latency_provider), "--latency-from-title"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.env = dict(os.environ, REACH_KAFKA_BROKERS=self.kafka, REACH_POSTGRES_URL=f"postgresql://reach@127.0.0.1:{self.pg}/reach",
                        REACH_REDIS_URL=f"redis://127.0.0.1:{self.redis}/0", REACH_HTTP_PORT=str(self.http),
                        REACH_BENCH_TOKEN="bench-" + os.urandom(8).hex())
        with open(f"{self.dir}/bench.yaml", "w") as f:
            f.write(f"""
kafka: {{brokers: "{self.kafka}", group_id: bench, consumer_properties: {{"fetch.wait.max.ms": "5"}}}}
http: {{host: 127.0.0.1, port: {self.http}, token_rate_per_second: 0}}
auth: {{tokens: [{{name: bench, scope: read, token_env: REACH_BENCH_TOKEN}}]}}
quiet_hours: {{start: "00:00", end: "00:00"}}
log: {{level: notice, format: json}}
pipeline: {{page_size: 5000}}
channels:
  sms:   {{provider: http, url: "http://127.0.0.1:{self.provider}/sms", batch_size: 500, concurrency: 4}}
  push:  {{provider: http, url: "http://127.0.0.1:{self.provider}/push", batch_size: 500, concurrency: 4}}
  email: {{provider: http, url: "http://127.0.0.1:{self.provider}/email", batch_size: 500, concurrency: 4}}
  webhook: {{provider: http, url: "http://127.0.0.1:{self.latency_provider}/webhook", batch_size: 500, concurrency: 8}}
""")
        subprocess.run([REACHD, "migrate", "--config", f"{self.dir}/bench.yaml"], check=True, env=self.env, stdout=subprocess.DEVNULL)

    def seed(self, n):
        say(f"seeding {n} recipients")
        psql(self.pg, "TRUNCATE reach.recipients, reach.segment_members, reach.deliveries, reach.campaigns, reach.inbox CASCADE")
        psql(self.pg, recipients_sql(n))
        psql(self.pg, "INSERT INTO reach.segments (id, name) VALUES ('bench', 'bench') ON CONFLICT DO NOTHING")
        psql(self.pg, "INSERT INTO reach.segment_members SELECT 'bench', user_id FROM reach.recipients")
        psql(self.pg, "VACUUM ANALYZE reach.recipients")
        psql(self.pg, "VACUUM ANALYZE reach.segment_members")
        subprocess.run(["redis-cli", "-p", str(self.redis), "flushall"], check=True, stdout=subprocess.DEVNULL)

    def api_load(self, cid, requests=1000, in_flight=50):
        """GET /v1/campaigns/{cid} `requests` times from `in_flight` threads, each on its own keep-alive connection."""
        latencies, errors, states = [], [], []
        lock = threading.Lock()
        per_worker = requests // in_flight
        headers = {"Authorization": "Bearer " + self.env["REACH_BENCH_TOKEN"]}

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
            for _ in range(per_worker):
                t0 = time.perf_counter()
                try:
                    conn.request("GET", f"/v1/campaigns/{cid}", headers=headers)
                    resp = conn.getresponse()
                    body = resp.read()
                    elapsed = time.perf_counter() - t0
                    with lock:
                        if resp.status == 200:
                            latencies.append(elapsed)
                            states.append(json.loads(body).get("state"))
                        else:
                            errors.append(resp.status)
                except Exception as e:  # a refused or reset connection counts as an error, not a latency
                    with lock:
                        errors.append(str(e))
                    conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
            conn.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(in_flight)]
        for t in threads: t.start()
        for t in threads: t.join()
        wall = time.perf_counter() - started
        latencies.sort()
        pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None
        return {"requests": requests, "in_flight": in_flight, "ok": len(latencies), "errors": len(errors),
                "requests_per_second": round(len(latencies) / wall), "p50_ms": pick(0.5), "p95_ms": pick(0.95),
                "p99_ms": pick(0.99), "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
                "answered_while_running": states.count("running")}

    def api_wrk(self, cid, connections=50, seconds=5):
        """The API's capacity on the same route: wrk (C, keep-alive) for a few seconds, so the client is not the limit."""
        if not shutil.which("wrk"):
            return None
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                              "-H", "Authorization: Bearer " + self.env["REACH_BENCH_TOKEN"],
                              f"http://127.0.0.1:{self.http}/v1/campaigns/{cid}"], capture_output=True, text=True).stdout
        def ms(label):
            m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            if not m:
                return None
            value, unit = float(m.group(1)), m.group(2)
            return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 1)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        return {"connections": connections, "seconds": seconds, "requests_per_second": round(float(rps.group(1))) if rps else None,
                "p50_ms": ms("50"), "p90_ms": ms("90"), "p99_ms": ms("99"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}

    def campaign(self, n, profile=False, api=False):
        reachd = self.serve(f"campaign-{n}" + ("-api" if api else ""))
        try:
            self.warm_up(n)
            cid = f"bench-{n}-{'api-' if api else ''}{int(time.time())}"
            task = {"kind": "campaign", "campaign_id": cid, "segment": {"id": "bench"},
                    "channels": {"sms": 60, "push": 30, "email": 10}, "template": {"title": "Hi {{name}}", "body": "{{name}}: level {{attrs.level}}"},
                    "quiet_hours": False}
            path = f"{self.dir}/{cid}.json"
            with open(path, "w") as f:
                json.dump(task, f)
            say(f"campaign to {n} recipients")
            perf = start_perf(reachd.pid, f"campaign-{n}") if profile else None
            busy0 = machine_busy()
            others0 = {name: process_cpu(pat) for name, pat in self.cpu_patterns().items()}
            reachd_cpu0 = proc_stats(reachd.pid)[1]
            published = time.time()
            subprocess.run([REACHD, "campaign", "publish", "--config", f"{self.dir}/bench.yaml", path], check=True, env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            peak = 0.0
            api_result = None
            if api:
                while psql(self.pg, f"SELECT state FROM reach.campaigns WHERE id = '{cid}'") != "running":
                    time.sleep(0.1)
                time.sleep(2)  # well into the run
                say(f"API load: GET /v1/campaigns/{cid}, 1000 requests at 50 in flight, then 1000 at once")
                api_result = self.api_load(cid)
                api_result["at_once"] = self.api_load(cid, requests=1000, in_flight=1000)
                api_result["wrk"] = self.api_wrk(cid)
            while psql(self.pg, f"SELECT state FROM reach.campaigns WHERE id = '{cid}'") != "done":
                peak = max(peak, proc_stats(reachd.pid)[0])
                time.sleep(0.2)
            wall = time.time() - published
            busy1 = machine_busy()
            others = {name: round(process_cpu(pat) - others0[name], 1) for name, pat in self.cpu_patterns().items()}
            if perf:
                stop_perf(perf, f"campaign-{n}")
            rss, cpu = proc_stats(reachd.pid)
            cpu -= reachd_cpu0  # the campaign's own: not the start-up and the warm-up campaign
            rows = int(psql(self.pg, f"SELECT count(*) FROM reach.deliveries WHERE campaign_id = '{cid}'"))
            run = float(psql(self.pg, f"SELECT extract(epoch FROM finished_at - created_at) FROM reach.campaigns WHERE id = '{cid}'"))
            stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.provider}/stats"))
            per_message = {"reachd": round(cpu * 1e6 / max(1, rows), 2)}
            per_message.update({name: round(value * 1e6 / max(1, rows), 2) for name, value in others.items()})
            per_message["all"] = round(sum(per_message.values()), 2)
            return {"recipients": n, "rows": rows, "cpu_us_per_message": per_message, "wall_seconds_publish_to_done": round(wall, 2),
                    "seconds_task_accepted_to_last_row": round(run, 2), "messages_per_second": round(rows / run),
                    "peak_rss_mb": round(max(peak, rss), 1), "cpu_seconds": round(cpu, 1),
                    "provider_duplicates": stats["duplicates"],
                    "machine_cpu_busy": round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 2),
                    "cpu_seconds_others": others, "api": api_result, "under_api_load": api}
        finally:
            reachd.send_signal(signal.SIGTERM)
            reachd.wait(timeout=30)

    def settle(self):
        """What the campaigns leave PostgreSQL to do (an autovacuum and ANALYZE of
        the rows they wrote, a checkpoint of their pages), done now, so the next
        scenario measures reachd rather than that: returns the seconds it took."""
        say("settling PostgreSQL after the campaigns (VACUUM ANALYZE, CHECKPOINT)")
        t0 = time.time()
        psql(self.pg, "VACUUM ANALYZE")
        psql(self.pg, "CHECKPOINT")
        return round(time.time() - t0, 1)

    def warm_up(self, n, config=None):
        """Runs a one-user campaign first: the daemon's consumer has then joined
        its group (the mock cluster takes ~3 s for the first join), so the
        measured wall time starts with a daemon ready to read."""
        config = config or f"{self.dir}/bench.yaml"
        cid = f"warm-up-{n}-{int(time.time())}"
        path = f"{self.dir}/{cid}.json"
        with open(path, "w") as f:
            json.dump({"kind": "campaign", "campaign_id": cid, "segment": {"user_ids": ["warm-up"]}, "channels": {"sms": 100},
                       "template": {"body": "warm-up"}, "quiet_hours": False}, f)
        subprocess.run([REACHD, "campaign", "publish", "--config", config, path], check=True, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if psql(self.pg, f"SELECT state FROM reach.campaigns WHERE id = '{cid}'") == "done":
                return
            time.sleep(0.1)
        raise RuntimeError("reachd did not finish the warm-up campaign within 30 s")

    def serve(self, name):
        reachd = subprocess.Popen([REACHD, "serve", "--config", f"{self.dir}/bench.yaml"], env=self.env,
                                  stdout=open(f"{self.dir}/reachd-{name}.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.http}/readyz", timeout=2).status == 200:
                    return reachd
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("reachd did not become ready")

    def triggers(self, rate, seconds, profile=False):
        """Trigger latency: `rate` events/s for `seconds` on reach.events, one
        rule sending each to the `webhook` channel, whose provider reads the
        publish time from the title."""
        psql(self.pg, """
            INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES
              ('bench-ping', 'bench.ping', '{"webhook": 100}', '{"title": "{{properties.published_us}}", "body": "ping"}', false),
              ('bench-warm', 'bench.warm', '{"webhook": 100}', '{"title": "warm", "body": "warm"}', false)
            ON CONFLICT (id) DO NOTHING""")
        reachd = self.serve("triggers")
        try:
            say(f"trigger latency: {rate} events/s for {seconds} s")
            subprocess.run([REACHD, "bench", "events", "--config", f"{self.dir}/bench.yaml", "--rate", "1", "--seconds", "1",
                            "--event", "bench.warm", "--users", "1"], check=True, env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            for _ in range(300):
                if self.latency_stats()["messages"] >= 1:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("the warm-up event never reached the provider")
            cpu0 = proc_stats(reachd.pid)[1]
            perf = start_perf(reachd.pid, "triggers") if profile else None
            out = subprocess.run([REACHD, "bench", "events", "--config", f"{self.dir}/bench.yaml", "--rate", str(rate),
                                  "--seconds", str(seconds), "--event", "bench.ping", "--users", "100000"],
                                 check=True, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
            m = re.search(r"events: (\d+) published in ([\d.]+) s \((\d+)/s\), (\d+) failed", out)
            published = int(m[1])
            deadline = time.time() + 60
            while time.time() < deadline:
                stats = self.latency_stats()
                if (stats.get("latency") or {}).get("count", 0) >= published:
                    break
                time.sleep(0.5)
            latency = stats.get("latency") or {}
            if perf:
                stop_perf(perf, "triggers")
            rss, cpu = proc_stats(reachd.pid)
            return {"events_per_second_target": rate, "seconds": seconds, "published": published,
                    "published_per_second": int(m[3]), "received": latency.get("count", 0),
                    "received_per_second": round(latency.get("per_second", 0)),
                    "latency_p50_ms": latency.get("p50_ms"), "latency_p99_ms": latency.get("p99_ms"), "latency_max_ms": latency.get("max_ms"),
                    "provider_duplicates": stats["duplicates"], "reachd_cpu_seconds": round(cpu - cpu0, 1), "peak_rss_mb": round(rss, 1)}
        finally:
            reachd.send_signal(signal.SIGTERM)
            reachd.wait(timeout=30)

    def scaleout(self, n, counts, delay_ms, tag, channel_line, pipeline):
        """One campaign of `n` recipients worked by 1, 2, 4 … `reachd serve`
        processes in one group: wall time from the task's acceptance to `done`
        (PostgreSQL's clock), and which instances held a shard."""
        provider = free_port()
        self.procs.append(subprocess.Popen([REACHD, "dev-provider", "--port", str(provider), "--delay-ms", str(delay_ms)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        config = f"{self.dir}/scaleout-{tag}.yaml"
        with open(f"{self.dir}/bench.yaml") as f:
            base = f.read()
        lines = [l for l in base.splitlines() if not l.startswith("pipeline:") and not l.startswith("  ") and not l.startswith("channels:")]
        with open(config, "w") as f:
            f.write("\n".join(lines) + f"\npipeline: {{{pipeline}}}\nchannels:\n  sms: {{provider: http, url: \"http://127.0.0.1:{provider}/sms\", {channel_line}}}\n")
        runs = []
        for k in counts:
            psql(self.pg, "TRUNCATE reach.deliveries, reach.campaign_shards, reach.campaigns, reach.inbox CASCADE")
            subprocess.run(["redis-cli", "-p", str(self.redis), "flushall"], check=True, stdout=subprocess.DEVNULL)
            procs = []
            try:
                for i in range(k):
                    port = free_port()
                    env = dict(self.env, REACH_HTTP_PORT=str(port))
                    p = subprocess.Popen([REACHD, "serve", "--config", config], env=env,
                                         stdout=open(f"{self.dir}/reachd-scaleout-{tag}-{k}-{i}.log", "w"), stderr=subprocess.STDOUT)
                    procs.append(p)
                    for _ in range(300):
                        try:
                            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                                break
                        except Exception:
                            pass
                        time.sleep(0.1)
                    else:
                        raise RuntimeError("reachd did not become ready")
                self.warm_up(f"{tag}-{k}", config=config)
                cid = f"scaleout-{tag}-{k}-{int(time.time())}"
                path = f"{self.dir}/{cid}.json"
                with open(path, "w") as f:
                    json.dump({"kind": "campaign", "campaign_id": cid, "segment": {"id": "bench"}, "channels": {"sms": 100},
                               "template": {"body": "Hi {{name}}"}, "quiet_hours": False}, f)
                say(f"scale-out ({tag}): {n} recipients, {k} instance(s)")
                cpu0 = sum(proc_stats(p.pid)[1] for p in procs)
                subprocess.run([REACHD, "campaign", "publish", "--config", config, path], check=True, env=self.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                owners = set()
                while psql(self.pg, f"SELECT state FROM reach.campaigns WHERE id = '{cid}'") != "done":
                    held = psql(self.pg, f"SELECT string_agg(DISTINCT owner, ',') FROM reach.campaign_shards WHERE campaign_id = '{cid}' AND owner IS NOT NULL")
                    owners.update(filter(None, held.split(",")))
                    time.sleep(0.2)
                run = float(psql(self.pg, f"SELECT extract(epoch FROM finished_at - created_at) FROM reach.campaigns WHERE id = '{cid}'"))
                rows = int(psql(self.pg, f"SELECT count(*) FROM reach.deliveries WHERE campaign_id = '{cid}'"))
                shards = int(psql(self.pg, f"SELECT shards FROM reach.campaigns WHERE id = '{cid}'"))
                cpu = sum(proc_stats(p.pid)[1] for p in procs) - cpu0
                runs.append({"instances": k, "seconds": round(run, 2), "rows": rows, "messages_per_second": round(rows / run),
                             "shards": shards, "instances_holding_shards": len(owners), "reachd_cpu_seconds": round(cpu, 1)})
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    p.wait(timeout=30)
        stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{provider}/stats"))
        base = runs[0]["seconds"]
        for r in runs:
            r["speedup"] = round(base / r["seconds"], 2)
        return {"recipients": n, "provider_delay_ms": delay_ms, "channel": channel_line, "pipeline": pipeline, "runs": runs,
                "provider_duplicates": stats["duplicates"]}

    def latency_stats(self):
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.latency_provider}/stats"))

    def cpu_patterns(self):
        return {"postgres": "postgres:", "redis": f"redis-server 127.0.0.1:{self.redis}", "provider": "dev-provider",
                "kafka": "dev-kafka"}

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except Exception:
                p.kill()
        sh(f"stop_redis '{self.dir}/redis'; stop_postgres '{self.dir}/pg'")
        shutil.rmtree(self.dir, ignore_errors=True)


def delay_queue(redis_port, items):
    say(f"delay queue: {items} items due at once, two schedulers")
    out = subprocess.run([REACHD, "bench", "delay-queue", "--items", str(items), "--schedulers", "2"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, REACH_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")).stdout
    m = re.search(r"all fired ([\d.]+) s after the due time: (\d+) items/s\s+lateness p50 (\d+) ms, p99 (\d+) ms, max (\d+) ms", out)
    return {"items": items, "all_fired_after_due_seconds": float(m[1]), "items_per_second": int(m[2]),
            "lateness_p50_ms": int(m[3]), "lateness_p99_ms": int(m[4]), "lateness_max_ms": int(m[5])}


def arq_peer(redis_port):
    say("peer: the same 100 000 delayed jobs with arq (PyPI) on the same Redis")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "arq_peer.py"), "--port", str(redis_port), "--jobs", "100000"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"arq: (\d+) of (\d+) jobs, enqueued in ([\d.]+) s, all fired ([\d.]+) s after the due time: (\d+) jobs/s\s+"
                  r"lateness p50 (\d+) ms, p99 (\d+) ms, max (\d+) ms", out)
    return {"jobs": int(m[2]), "fired": int(m[1]), "enqueue_seconds": float(m[3]), "all_fired_after_due_seconds": float(m[4]),
            "jobs_per_second": int(m[5]), "lateness_p50_ms": int(m[6]), "lateness_p99_ms": int(m[7]), "lateness_max_ms": int(m[8]),
            "settings": "arq 2 burst workers, max_jobs=1000, poll_delay=0.05 s, keep_result=0"}


def limits(n):
    say(f"machine ceilings (../shared/bench/limits.sh {n})")
    script = os.path.join(os.path.dirname(ROOT), "shared", "bench", "limits.sh")
    out = subprocess.run(["bash", script, str(n)], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and re.match(r"^[\d.]+$", parts[1]):
            result[parts[0]] = float(parts[1])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="campaign sizes, comma-separated")
    parser.add_argument("--profile", action="store_true", help="perf-record reachd during each campaign and the trigger load (bench-profile-*.txt)")
    parser.add_argument("--only", default="", help="comma-separated scenarios to run (campaign,api,trigger,delay,peer,scaleout,limits); default all but scaleout")
    parser.add_argument("--event-rate", type=int, default=10000, help="trigger scenario: events per second (target: p99 ≤ 50 ms)")
    parser.add_argument("--event-seconds", type=int, default=30, help="trigger scenario: seconds of load")
    parser.add_argument("--limits-rows", type=int, default=1000000, help="N for limits.sh")
    parser.add_argument("--delay-items", type=int, default=1000000, help="delay scenario: items due at once (target: all fired in ≤ 10 s)")
    parser.add_argument("--scaleout-size", type=int, default=200000, help="scaleout: recipients of the wait-bound campaign")
    parser.add_argument("--scaleout-delay-ms", type=int, default=50, help="scaleout: the provider's added latency per request")
    parser.add_argument("--scaleout-instances", default="1,2,4", help="scaleout: instance counts, comma-separated")
    parser.add_argument("--scaleout-cpu-size", type=int, default=1000000, help="scaleout: recipients of the CPU-bound campaign (0: skip)")
    args = parser.parse_args()
    wanted = set(filter(None, args.only.split(","))) or {"campaign", "api", "trigger", "delay", "peer", "limits"}
    if "campaign" in wanted:
        wanted.add("limits")  # the campaign's rate is reported as a ratio of pg_copy_in_pk, measured in the same run
    started = time.time()
    say("building reachd (release; already built by scripts/demo)")
    subprocess.run(["swift", "build", "-c", "release", "--product", "reachd"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    built = time.time()
    results = {"campaigns": [], "machine": {"cores": os.cpu_count()}}
    stack = Stack()
    try:
        stack.start()
        if "campaign" in wanted or "api" in wanted:
            sizes = [int(s) for s in args.sizes.split(",") if s]
            for n in sizes if "campaign" in wanted else []:
                stack.seed(n)
                results["campaigns"].append(stack.campaign(n, profile=args.profile))
            if "api" in wanted:
                # The API under a running campaign of the largest size: a campaign of its own, so
                # the measured ones above run alone (the API load costs the campaign about a third).
                if "campaign" not in wanted:
                    stack.seed(sizes[-1])
                results["campaigns"].append(stack.campaign(sizes[-1], api=True))
        if "trigger" in wanted:
            if not results["campaigns"]:
                stack.seed(100000)
            results["settle_seconds"] = stack.settle()
            results["triggers"] = stack.triggers(args.event_rate, args.event_seconds, profile=args.profile)
        if "delay" in wanted:
            results["delay_queue"] = delay_queue(stack.redis, args.delay_items)
        if "peer" in wanted:
            results["peer_arq"] = arq_peer(stack.redis)
        if "scaleout" in wanted:
            counts = [int(c) for c in args.scaleout_instances.split(",") if c]
            stack.seed(args.scaleout_size)
            # Wait-bound: each instance's one sms pool holds 2 requests of 100 for the provider's delay,
            # so one instance sends at most 2 × 100 / delay; the shards let every instance work the campaign.
            results["scaleout"] = [stack.scaleout(args.scaleout_size, counts, args.scaleout_delay_ms, "wait",
                                                  "batch_size: 100, concurrency: 2",
                                                  "page_size: 1000, shards: 8, shard_min_recipients: 10000, max_campaigns: 2")]
            if args.scaleout_cpu_size:
                stack.seed(args.scaleout_cpu_size)
                results["scaleout"].append(stack.scaleout(args.scaleout_cpu_size, [1, 2], 0, "cpu", "batch_size: 500, concurrency: 4",
                                                          "page_size: 5000, shards: 8, shard_min_recipients: 50000, max_campaigns: 2"))
    finally:
        stack.stop()
    ceilings = limits(args.limits_rows) if "limits" in wanted else {}
    results["ceilings"] = ceilings
    results["seconds"] = {"build": round(built - started), "scenarios_and_ceilings": round(time.time() - built)}
    report(results)


def ratio(value, ceilings, name):
    ceiling = ceilings.get(name)
    return f"{value / ceiling:.2f} of {name}" if ceiling else ""


def report(results):
    ceilings = results["ceilings"]
    print()
    print(f"{'figure':46} {'value':>12}  ratio to ceiling")
    for c in results["campaigns"]:
        label = f"campaign {c['recipients']}" + (" under the API load" if c.get("under_api_load") else "")
        print(f"{label + ': messages/s (target ≥ 0.15)':46} {c['messages_per_second']:>12}  {ratio(c['messages_per_second'], ceilings, 'pg_copy_in_pk')}")
        print(f"{'  task accepted → last row, s':46} {c['seconds_task_accepted_to_last_row']:>12}")
        print(f"{'  peak RSS, MB':46} {c['peak_rss_mb']:>12}")
        print(f"{'  CPU seconds':46} {c['cpu_seconds']:>12}")
        print(f"{'  provider duplicates':46} {c['provider_duplicates']:>12}")
        print(f"{'  machine CPU busy (both cores)':46} {c['machine_cpu_busy']:>12}")
        for name, value in c["cpu_seconds_others"].items():
            print(f"{'  CPU seconds of ' + name:46} {value:>12}")
        for name, value in c["cpu_us_per_message"].items():
            print(f"{'  CPU µs per message, ' + name:46} {value:>12}")
        if c.get("api"):
            for a in [c["api"], c["api"].get("at_once")]:
                if not a:
                    continue
                print(f"{'  API GET /v1/campaigns/{id}, ' + str(a['in_flight']) + ' in flight: req/s':46} {a['requests_per_second']:>12}  {ratio(a['requests_per_second'], ceilings, 'http_requests')}")
                print(f"{'    ok / errors / answered while running':46} {str(a['ok']) + ' / ' + str(a['errors']) + ' / ' + str(a['answered_while_running']):>12}")
                for q in ["p50", "p95", "p99", "max"]:
                    print(f"{'    latency ' + q + ', ms':46} {a[q + '_ms']:>12}")
            w = c["api"].get("wrk")
            if w:
                print(f"{'  API same route, wrk ' + str(w['connections']) + ' conns ' + str(w['seconds']) + ' s: req/s':46} {w['requests_per_second']:>12}  {ratio(w['requests_per_second'], ceilings, 'http_requests')}")
                print(f"{'    latency p50 / p90 / p99, ms; non-2xx':46} {str(w['p50_ms']) + ' / ' + str(w['p90_ms']) + ' / ' + str(w['p99_ms']) + '; ' + str(w['non_2xx']):>12}")
    if "triggers" in results:
        t = results["triggers"]
        print(f"{'settling PostgreSQL before the triggers, s':46} {results.get('settle_seconds', 0):>12}")
        print(f"{'triggers: events/s published (target ' + str(t['events_per_second_target']) + ')':46} {t['published_per_second']:>12}")
        print(f"{'  events/s reaching the provider':46} {t['received_per_second']:>12}")
        print(f"{'  received / published':46} {str(t['received']) + '/' + str(t['published']):>12}")
        print(f"{'  latency p50, ms':46} {t['latency_p50_ms']:>12}")
        print(f"{'  latency p99, ms (target ≤ 50)':46} {t['latency_p99_ms']:>12}")
        print(f"{'  latency max, ms':46} {t['latency_max_ms']:>12}")
        print(f"{'  reachd CPU seconds':46} {t['reachd_cpu_seconds']:>12}")
    if "delay_queue" in results:
        dq = results["delay_queue"]
        print(f"{'delay queue ' + str(dq['items']) + ': items/s (target ≥ 0.5)':46} {dq['items_per_second']:>12}  {ratio(dq['items_per_second'], ceilings, 'redis_zadd_pipelined')}")
        print(f"{'  all fired after due, s (target ≤ 10)':46} {dq['all_fired_after_due_seconds']:>12}")
        print(f"{'  lateness p99, ms':46} {dq['lateness_p99_ms']:>12}")
    if "peer_arq" in results:
        a = results["peer_arq"]
        print(f"{'peer arq: jobs/s (same 100 000, same Redis)':46} {a['jobs_per_second']:>12}  {ratio(a['jobs_per_second'], ceilings, 'redis_zadd_pipelined')}")
        print(f"{'  all fired after due, s':46} {a['all_fired_after_due_seconds']:>12}")
        print(f"{'  lateness p99, ms':46} {a['lateness_p99_ms']:>12}")
        if "delay_queue" in results:
            print(f"{'  reachd ÷ arq (items/s)':46} {results['delay_queue']['items_per_second'] / a['jobs_per_second']:>12.1f}")
    for so in results.get("scaleout", []):
        label = f"scale-out {so['recipients']}, provider +{so['provider_delay_ms']} ms"
        for r in so["runs"]:
            print(f"{label + ', ' + str(r['instances']) + ' instance(s): s':46} {r['seconds']:>12}  {r['speedup']}× of 1 instance; "
                  f"{r['messages_per_second']}/s ({ratio(r['messages_per_second'], ceilings, 'pg_copy_in_pk')}); "
                  f"{r['shards']} shards held by {r['instances_holding_shards']}; reachd CPU {r['reachd_cpu_seconds']} s")
        print(f"{'  provider duplicates':46} {so['provider_duplicates']:>12}")
    for name, value in ceilings.items():
        print(f"{'ceiling ' + name:46} {value:>12.0f}")
    print(f"{'bench seconds: build / scenarios + ceilings':46} {results['seconds']['build']:>5} / {results['seconds']['scenarios_and_ceilings']}")
    with open(os.path.join(ROOT, "bench-results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("\nwrote bench-results.json")


if __name__ == "__main__":
    main()
