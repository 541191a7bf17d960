#!/usr/bin/env python3
"""reachd's fault harness (README "Faults, proven").

Starts its own stack on free loopback ports (PostgreSQL, Redis with AOF, the
embedded Kafka, a provider that records every message id and can be told to
misbehave: scripts/fault_provider.py), drives reachd only through its public
doors (Kafka, HTTP, the providers), injects a fault and then checks the
invariants from outside: rows in PostgreSQL, the provider's record of every
message id, and `/readyz`. Each scenario ends with one line

    scenario: <name> … lost=0 duplicates=N (bound B) PASS|FAIL

and the script exits non-zero when any line says FAIL.

    scenarios  kill9 servers providers smtp failover shutdown fuzz soak
    --small    the sizes `scripts/test` runs; without it, the sizes README reports
"""
import argparse, http.client, json, os, random, re, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, say, free_port, sh, psql, proc_stats, recipients_sql, start_dev_kafka  # noqa: E402

TERMINAL = ("sent", "skipped", "dead")
RESULTS = []


def result(name, ok, **figures):
    """The scenario's one line, in the form README documents."""
    parts = " ".join(f"{k}={v}" for k, v in figures.items())
    line = f"scenario: {name} {parts} {'PASS' if ok else 'FAIL'}"
    print(line, flush=True)
    RESULTS.append((name, ok, figures))
    return ok


class Instance:
    """One `reachd serve` process on its own HTTP port; restartable on that port."""

    def __init__(self, stack, name, config):
        self.stack, self.name, self.config = stack, name, config
        self.port = free_port()
        self.proc = None
        self.starts = 0

    def start(self, wait=True):
        self.starts += 1
        env = dict(self.stack.env, REACH_HTTP_PORT=str(self.port))
        log = open(f"{self.stack.dir}/reachd-{self.name}.log", "a")
        self.proc = subprocess.Popen([self.stack.binary, "serve", "--config", self.config], env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reachd {self.name} exited with {self.proc.returncode} while starting")
            if self.readyz()[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"reachd {self.name} did not become ready within {seconds} s")

    def readyz(self, timeout=3):
        """(status, seconds to answer); status None when nothing answered."""
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
        except Exception:
            status = None
        return status, time.perf_counter() - t0

    def metric(self, name, labels=""):
        """The value of one series on /metrics (None when absent)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3).read().decode()
        except Exception:
            return None
        for line in text.splitlines():
            if line.startswith(name + "{" + labels) or (not labels and line.startswith(name + " ")):
                return float(line.rsplit(" ", 1)[1])
        return None

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def stop(self, grace=30):
        """SIGTERM; the seconds it took to exit."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.time() - t0

    def rss_fds(self):
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds


class ReadyWatch(threading.Thread):
    """Polls /readyz of some instances every 200 ms: whether it turned 503 and
    back, and the slowest answer."""

    def __init__(self, instances):
        super().__init__(daemon=True)
        self.instances = instances
        self.samples = []  # (time, status, seconds)
        self.running = True

    def run(self):
        while self.running:
            for i in self.instances:
                if i.proc and i.proc.poll() is None:
                    status, took = i.readyz()
                    self.samples.append((time.time(), status, took))
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.join(timeout=10)

    def summary(self, since):
        after = [s for s in self.samples if s[0] >= since]
        down = [s for s in after if s[1] != 200]
        return {"saw_503": any(s[1] == 503 for s in after), "back_200": bool(after) and after[-1][1] == 200,
                "slowest_readyz_s": round(max((s[2] for s in after), default=0), 2), "not_ready_samples": len(down)}


class Stack:
    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="reach-chaos-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.pg, self.redis, self.provider = free_port(), free_port(), free_port()
        self.procs = []
        self.kafka_proc = None

    # --- servers -----------------------------------------------------------
    def start(self):
        say(f"chaos stack in {self.dir}: PostgreSQL :{self.pg}, Redis :{self.redis} (AOF), embedded Kafka, fault provider :{self.provider}")
        sh(f"start_postgres '{self.dir}/pg' {self.pg}")
        self.start_redis()
        self.start_kafka()
        self.provider_proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "fault_provider.py"), "--port", str(self.provider)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.provider_stats()
                break
            except Exception:
                time.sleep(0.1)
        self.env = dict(os.environ, REACH_KAFKA_BROKERS=self.kafka, REACH_POSTGRES_URL=f"postgresql://reach@127.0.0.1:{self.pg}/reach",
                        REACH_REDIS_URL=f"redis://127.0.0.1:{self.redis}/0", REACH_CHAOS_TOKEN="chaos-" + os.urandom(8).hex())
        self.config("base")  # migrates

    def start_redis(self):
        sh(f"start_redis '{self.dir}/redis' {self.redis} durable")

    def redis_pid(self):
        with open(f"{self.dir}/redis/redis.pid") as f:
            return int(f.read())

    def start_kafka(self):
        self.kafka_proc, self.kafka = start_dev_kafka(self.binary, self.dir)

    def postgres_pids(self):
        """The postmaster and every backend (SIGSTOP must reach them all to freeze the server)."""
        with open(f"{self.dir}/pg/data/postmaster.pid") as f:
            master = int(f.readline())
        kids = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        return [master] + [int(k) for k in kids]

    def pg_ctl(self, action, mode="fast"):
        sh(f"as_pg \"$(pg_bin)/pg_ctl\" -D '{self.dir}/pg/data' -m {mode} -w stop >/dev/null" if action == "stop" else
           f"start_postgres '{self.dir}/pg' {self.pg}")

    # --- configuration ----------------------------------------------------
    def config(self, name, channels=None, pipeline="page_size: 1000, lease_ms: 6000", extra=""):
        p = self.provider
        channels = channels or {
            "sms": "batch_size: 100, concurrency: 2",
            "push": "batch_size: 100, concurrency: 2",
            "email": "batch_size: 100, concurrency: 2",
        }
        lines = [f"kafka: {{brokers: \"{self.kafka}\", group_id: chaos, consumer_properties: {{\"fetch.wait.max.ms\": \"10\"}}}}",
                 "http: {host: 127.0.0.1, port: 8080, token_rate_per_second: 0}",
                 "auth: {tokens: [{name: chaos, scope: write, token_env: REACH_CHAOS_TOKEN}]}",
                 "quiet_hours: {start: \"00:00\", end: \"00:00\"}",
                 "log: {level: info, format: json}",
                 "shutdown: {grace_period_ms: 10000}",
                 f"pipeline: {{{pipeline}}}",
                 "channels:"]
        for ch, line in channels.items():
            if "provider:" in line:
                lines.append(f"  {ch}: {{{line}}}")
            else:
                lines.append(f"  {ch}: {{provider: http, url: \"http://127.0.0.1:{p}/{ch}\", {line}}}")
        path = f"{self.dir}/{name}.yaml"
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)
        subprocess.run([self.binary, "migrate", "--config", path], check=True, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return path

    # --- data -------------------------------------------------------------
    def seed(self, n):
        say(f"seeding {n} recipients (every 50th opted out of sms)")
        psql(self.pg, "TRUNCATE reach.recipients, reach.segment_members, reach.deliveries, reach.campaigns, reach.campaign_shards, "
                      "reach.inbox, reach.dead_letters, reach.preferences, reach.triggers CASCADE")
        psql(self.pg, recipients_sql(n))
        psql(self.pg, "INSERT INTO reach.segments (id, name) VALUES ('chaos', 'chaos') ON CONFLICT DO NOTHING")
        psql(self.pg, "INSERT INTO reach.segment_members SELECT 'chaos', user_id FROM reach.recipients")
        psql(self.pg, "INSERT INTO reach.preferences (user_id, channel, opted_out) SELECT user_id, 'sms', true FROM reach.recipients "
                      "WHERE substr(user_id, 2)::int % 50 = 0")
        psql(self.pg, "INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES "
                      "('chaos-ping', 'chaos.ping', '{\"push\": 100}', '{\"title\": \"ping\", \"body\": \"ping {{user_id}}\"}', false)")
        psql(self.pg, "ANALYZE")

    def segment(self, n):
        """Segment `chaos-<n>`: the first n seeded users."""
        sid = f"chaos-{n}"
        if psql(self.pg, f"SELECT count(*) FROM reach.segments WHERE id = '{sid}'") == "0":
            psql(self.pg, f"INSERT INTO reach.segments (id, name) VALUES ('{sid}', '{sid}')")
            psql(self.pg, f"INSERT INTO reach.segment_members SELECT '{sid}', user_id FROM reach.recipients ORDER BY user_id LIMIT {n}")
        return {"id": sid}

    def publish(self, config, cid, users, channels=None, extra=None):
        task = {"kind": "campaign", "campaign_id": cid, "segment": self.segment(users),
                "channels": channels or {"sms": 50, "push": 30, "email": 20},
                "template": {"title": "Hello {{name}}", "body": "Hi {{name}}, level {{attrs.level}}"}, "quiet_hours": False}
        task.update(extra or {})
        path = f"{self.dir}/{cid}.json"
        with open(path, "w") as f:
            json.dump(task, f)
        subprocess.run([self.binary, "campaign", "publish", "--config", config, path], check=True, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def events(self, config, rate, seconds, users):
        """Publishes `rate` chaos.ping events/s for `seconds` in the background; .result() gives how many went out."""
        proc = subprocess.Popen([self.binary, "bench", "events", "--config", config, "--rate", str(rate), "--seconds", str(seconds),
                                 "--event", "chaos.ping", "--users", str(users)], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

        class Load:
            def result(self):
                out = proc.communicate(timeout=seconds + 600)[0]
                m = re.search(r"events: (\d+) published", out)
                if not m:
                    raise RuntimeError(f"the event load printed no report: {out!r}")
                return int(m[1])
        return Load()

    def state(self, cid):
        return psql(self.pg, f"SELECT state FROM reach.campaigns WHERE id = '{cid}'")

    def wait_campaign(self, cid, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            s = self.state(cid)
            if s in ("done", "cancelled", "failed"):
                return s
            time.sleep(0.5)
        return self.state(cid) or "missing"

    def wait_events(self, expected, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.event_rows()[0] >= expected:
                return True
            time.sleep(0.5)
        return False

    def event_rows(self):
        """(terminal rows of chaos.ping sends, rows in all)."""
        out = psql(self.pg, "SELECT count(*) FILTER (WHERE status IN ('sent','skipped','dead')), count(*) FROM reach.deliveries "
                            "WHERE campaign_id LIKE 't:chaos-ping:%'")
        a, b = out.split("|")
        return int(a), int(b)

    def provider_stats(self):
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.provider}/stats", timeout=10))

    def provider_ids(self):
        return json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.provider}/ids", timeout=600))

    def provider_mode(self, mode, **kw):
        req = urllib.request.Request(f"http://127.0.0.1:{self.provider}/_mode", data=json.dumps({"mode": mode, **kw}).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def check(self, cid_pattern, expected_users, ids=None):
        """The invariants over the rows whose campaign_id matches: every expected
        user one terminal row; every `sent` row's message at the provider; how many
        of their message ids the provider received more than once."""
        rows = psql(self.pg, f"SELECT status, message_id FROM reach.deliveries WHERE campaign_id LIKE '{cid_pattern}'")
        ids = self.provider_ids() if ids is None else ids
        terminal = sent_missing = duplicates = 0
        statuses = {}
        for line in filter(None, rows.splitlines()):
            status, mid = line.split("|")
            statuses[status] = statuses.get(status, 0) + 1
            if status in TERMINAL:
                terminal += 1
            if status == "sent" and ids.get(mid, 0) == 0:
                sent_missing += 1
            duplicates += max(0, ids.get(mid, 0) - 1)
        return {"lost": max(0, expected_users - terminal) + sent_missing, "duplicates": duplicates, "statuses": statuses,
                "sent_not_at_provider": sent_missing}

    def reset(self):
        psql(self.pg, "TRUNCATE reach.deliveries, reach.campaigns, reach.campaign_shards, reach.inbox, reach.dead_letters CASCADE")
        subprocess.run(["redis-cli", "-p", str(self.redis), "flushall"], check=True, stdout=subprocess.DEVNULL)
        self.provider_mode("ok")
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.provider}/_reset", data=b"{}", method="POST"), timeout=10).read()

    def stop(self):
        for p in self.procs + [self.kafka_proc, self.provider_proc]:
            if p and p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.terminate()
                try:
                    p.wait(timeout=10)
                except Exception:
                    p.kill()
        for pid in self.postgres_pids_or_none():
            os.kill(pid, signal.SIGCONT)
        try:
            os.kill(self.redis_pid(), signal.SIGCONT)
        except Exception:
            pass
        sh(f"stop_redis '{self.dir}/redis'; stop_postgres '{self.dir}/pg'")
        if not os.environ.get("REACH_CHAOS_KEEP"):
            subprocess.run(["rm", "-rf", self.dir])

    def postgres_pids_or_none(self):
        try:
            return self.postgres_pids()
        except Exception:
            return []


def in_flight_bound(channels):
    """Σ concurrency × batch_size over the channels: what one process can have on the wire."""
    total = 0
    for line in channels.values():
        b = re.search(r"batch_size: (\d+)", line)
        c = re.search(r"concurrency: (\d+)", line)
        total += (int(b[1]) if b else 100) * (int(c[1]) if c else 4)
    return total


# --- scenario 1: kill -9 ---------------------------------------------------
def kill9(stack, users, kills, event_rate, seconds_between):
    stack.reset()
    channels = {"sms": "batch_size: 100, concurrency: 2", "push": "batch_size: 100, concurrency: 2", "email": "batch_size: 100, concurrency: 2"}
    config = stack.config("kill9", channels)
    a, b = Instance(stack, "kill9-a", config).start(), Instance(stack, "kill9-b", config).start()
    instances = [a, b]
    cid = f"chaos-kill9-{int(time.time())}"
    rng = random.Random(int(os.environ.get("REACH_CHAOS_SEED", "20261204")))
    try:
        load_seconds = max(5, int(kills * seconds_between * 0.8))
        load = stack.events(config, event_rate, load_seconds, users)
        stack.publish(config, cid, users)
        t0 = time.time()
        for k in range(kills):
            time.sleep(rng.uniform(0.3, seconds_between * 2 - 0.3))
            victim = rng.choice(instances)
            victim.kill()
            victim.start(wait=False)
        for i in instances:
            i.wait_ready(120)
        published = load.result()
        state = stack.wait_campaign(cid, 900)
        events_done = stack.wait_events(published, 300)
        took = time.time() - t0
        c = stack.check(cid, users)
        e = stack.check("t:chaos-ping:%", published)
        bound = kills * in_flight_bound(channels)
        dups = c["duplicates"] + e["duplicates"]
        ok = state == "done" and events_done and c["lost"] == 0 and e["lost"] == 0 and dups <= bound
        return result("kill9", ok, users=users, events=published, kills=kills, state=state, lost=c["lost"] + e["lost"],
                      duplicates=f"{dups} (bound {bound})", seconds=round(took, 1))
    finally:
        for i in instances:
            i.stop()


# --- scenario 2: servers down and hung --------------------------------------
def servers(stack, users, outage, event_rate, which):
    ok_all = True
    channels = {"sms": "batch_size: 100, concurrency: 2, rate_per_second: 1000", "push": "batch_size: 100, concurrency: 2",
                "email": "batch_size: 100, concurrency: 2"}
    for server, how in which:
        stack.reset()
        config = stack.config(f"servers-{server}-{how}", channels)
        inst = Instance(stack, f"servers-{server}-{how}", config).start()
        watch = ReadyWatch([inst])
        watch.start()
        cid = f"chaos-{server}-{how}-{int(time.time())}"
        try:
            load = stack.events(config, event_rate, int(outage + 10), users)
            stack.publish(config, cid, users, channels={"sms": 100})
            # In the middle of the campaign: once it runs and has written rows.
            deadline = time.time() + 120
            while time.time() < deadline and int(psql(stack.pg, f"SELECT count(*) FROM reach.deliveries WHERE campaign_id = '{cid}'")) < 200:
                time.sleep(0.2)
            injected = time.time()
            if server == "redis":
                if how == "kill":
                    os.kill(stack.redis_pid(), signal.SIGKILL)
                    time.sleep(outage)
                    stack.start_redis()
                else:
                    pid = stack.redis_pid()
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(outage)
                    os.kill(pid, signal.SIGCONT)
            elif server == "postgres":
                if how == "kill":
                    stack.pg_ctl("stop", mode="immediate")
                    time.sleep(outage)
                    stack.pg_ctl("start")
                else:
                    pids = stack.postgres_pids()
                    for pid in pids:
                        os.kill(pid, signal.SIGSTOP)
                    time.sleep(outage)
                    for pid in pids:
                        os.kill(pid, signal.SIGCONT)
            elif server == "kafka":
                # The embedded broker keeps its log in memory: a restart would lose it (README), so it is frozen.
                os.kill(stack.kafka_proc.pid, signal.SIGSTOP)
                time.sleep(outage)
                os.kill(stack.kafka_proc.pid, signal.SIGCONT)
            restored = time.time()
            published = load.result()
            state = stack.wait_campaign(cid, 600)
            events_done = stack.wait_events(published, 300)
            recovered = time.time() - restored
            time.sleep(1.5)
            ready = watch.summary(injected)
            c = stack.check(cid, users)
            e = stack.check("t:chaos-ping:%", published)
            alive = inst.proc.poll() is None and inst.starts == 1
            lost, dups = c["lost"] + e["lost"], c["duplicates"] + e["duplicates"]
            ok = state == "done" and events_done and lost == 0 and dups == 0 and alive and ready["saw_503"] and ready["back_200"] \
                and ready["slowest_readyz_s"] <= 1.0
            ok_all &= result(f"{server}-{how}", ok, outage_s=outage, users=users, events=published, state=state, lost=lost,
                             duplicates=f"{dups} (bound 0)", readyz_503=ready["saw_503"], readyz_back=ready["back_200"],
                             slowest_readyz_s=ready["slowest_readyz_s"], no_restart=alive, done_after_restore_s=round(recovered, 1))
        finally:
            watch.stop()
            inst.stop()
    return ok_all


# --- scenario 3: providers that misbehave -----------------------------------
def providers(stack, users, fault_seconds, modes, tag="providers", backup=False):
    """Each fault of the provider on its own. With `backup`, the channel lists a second provider
    (failover): everything the faulty one does not take goes through the backup within the
    breaker's reaction time, and nothing waits for the faulty one to recover."""
    ok_all = True
    spare = None
    if backup:
        spare_port = free_port()
        spare = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "fault_provider.py"), "--port", str(spare_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.procs.append(spare)
        time.sleep(1)
    for mode in modes:
        stack.reset()
        sms = ("batch_size: 50, concurrency: 2, timeout_ms: 1000, retry: {max_attempts: 3, base_ms: 200, max_ms: 1000}, "
               "circuit_breaker: {failure_rate: 0.5, window_seconds: 5, minimum_calls: 6, cool_down_ms: 2000}")
        if backup:
            # The faulty provider stays faulty for the whole run: the backup must carry it.
            sms = (f"provider: http, providers: [{{name: primary, url: \"http://127.0.0.1:{stack.provider}/sms\"}}, "
                   f"{{name: backup, url: \"http://127.0.0.1:{spare_port}/sms\"}}], " + sms.replace("cool_down_ms: 2000", "cool_down_ms: 30000"))
        config = stack.config(f"{tag}-{mode}", {"sms": sms})
        inst = Instance(stack, f"{tag}-{mode}", config).start()
        cid = f"chaos-{tag}-{mode}-{int(time.time())}"
        try:
            before = stack.provider_stats()
            stack.provider_mode(mode, ms=3000, retry_after=1)
            t_start = time.time()
            stack.publish(config, cid, users, channels={"sms": 100})
            # The fault lasts `fault_seconds` from the first request it answers.
            deadline = time.time() + 60
            while stack.provider_stats()["requests"] == before["requests"] and time.time() < deadline:
                time.sleep(0.05)
            opened = False
            fault_end = time.time() + fault_seconds
            while time.time() < fault_end:
                opened |= (inst.metric("reach_circuit_open", 'channel="sms"') or 0) > 0 \
                    or (inst.metric("reach_provider_circuit_open", 'channel="sms",provider="primary"') or 0) > 0
                time.sleep(0.2)
            during = stack.provider_stats()
            if not backup:
                stack.provider_mode("ok")
            state = stack.wait_campaign(cid, 600)
            took = time.time() - t_start
            if backup:
                during = stack.provider_stats()  # the primary faulted until the end: all it took bounds the duplicates
                stack.provider_mode("ok")
                # Both providers' records: a message is at "the provider" when either has it.
                ids = stack.provider_ids()
                for k, v in json.load(urllib.request.urlopen(f"http://127.0.0.1:{spare_port}/ids", timeout=60)).items():
                    ids[k] = ids.get(k, 0) + v
                c = stack.check(cid, users, ids=ids)
                via = dict(tuple(l.split("|")) for l in psql(stack.pg, f"SELECT coalesce(provider, '-'), count(*) FROM reach.deliveries "
                                                                         f"WHERE campaign_id = '{cid}' AND status = 'sent' GROUP BY 1").splitlines() if l)
            else:
                c = stack.check(cid, users)
            st = c["statuses"]
            dead_reasons = psql(stack.pg, f"SELECT coalesce(string_agg(DISTINCT reason, ','), '') FROM reach.deliveries "
                                          f"WHERE campaign_id = '{cid}' AND status = 'dead'")
            no_reason = int(psql(stack.pg, f"SELECT count(*) FROM reach.deliveries WHERE campaign_id = '{cid}' "
                                           f"AND status IN ('dead','skipped') AND reason IS NULL"))
            # Ambiguous requests (no clean answer) may be resent: their ids bound the duplicates.
            fault_requests = during["requests"] - before["requests"]
            bound = 0 if mode in ("storm429", "ok") else during["messages"] - before["messages"]
            retried = sum(v for v in [inst.metric("reach_messages_total", 'channel="sms",status="retried"' + extra)
                                      for extra in ("", ',provider="primary"', ',provider="backup"', ',provider="http"')] if v)
            # Failures the provider causes open the breaker (failure rate 0.5 over 6 calls); 2xx answers never do.
            must_open = mode in ("slow", "reset", "cut", "blackhole", "storm429")
            ok = state == "done" and c["lost"] == 0 and no_reason == 0 and c["duplicates"] <= bound and (opened or not must_open)
            if backup:
                # The primary's breaker (30 s cool-down) never lets it carry the run again: the backup does,
                # and the run ends well before the cool-down would have.
                ok = ok and (not must_open or int(via.get("backup", 0)) > 0) and took < 30
                ok_all &= result(f"failover-{mode}", ok, users=users, state=state, seconds=round(took, 1), lost=c["lost"],
                                 duplicates=f"{c['duplicates']} (bound {bound})", sent_via=",".join(f"{k}:{v}" for k, v in sorted(via.items())),
                                 dead=st.get("dead", 0))
                continue
            ok_all &= result(f"{tag}-{mode}", ok, users=users, fault_s=fault_seconds, requests_during_fault=fault_requests,
                             breaker_opened=opened, retried=int(retried), state=state, lost=c["lost"],
                             duplicates=f"{c['duplicates']} (bound {bound})",
                             sent=st.get("sent", 0), dead=st.get("dead", 0), dead_reasons=dead_reasons or "-")
        finally:
            inst.stop()
    return ok_all


# --- scenario 4: fuzzed input -----------------------------------------------
API_PATHS = ["/v1/campaigns", "/v1/campaigns/x", "/v1/campaigns/x/pause", "/v1/campaigns/x/resume", "/v1/campaigns/x/cancel",
             "/v1/segments/preview", "/v1/triggers", "/v1/triggers/x", "/v1/dead-letters", "/v1/dead-letters/replay",
             "/v1/inbox/u1", "/v1/inbox/u1/x/read", "/v1/channels", "/v1/channels/sms/pause", "/v1/audit", "/v1/nothing"]


def http_fuzz(inst, count, rng, token):
    """Random methods, paths, headers and bodies against the API: every answer is below 500, and every
    4xx on /v1 carries the error shape. Returns (requests, 5xx, 4xx without the shape, examples)."""
    bad_status = bad_shape = protocol = 0
    examples = []
    for i in range(count):
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "POST", "POST"])
        path = rng.choice(API_PATHS)
        r = rng.random()
        if r < 0.2:
            path += "/" + "".join(rng.choice(["..", "%00", "%ff", "é", "x" * 300, "?a=%", "?limit=-1", "?after=%%%", "?since=9999-99"]) for _ in range(2))
        elif r < 0.3:
            path = path.replace("x", rng.choice(["%00", "a" * 5000, "%2e%2e", "t:x:y", "%c3%28"]))
        headers = {}
        auth = rng.random()
        if auth < 0.3:
            headers["Authorization"] = "Bearer " + token
        elif auth < 0.5:
            headers["Authorization"] = rng.choice(["Bearer", "Basic abc", "Bearer " + "z" * 5000, "bearer " + token.upper(), "Bearer \x01"])
        if rng.random() < 0.2:
            headers["X-Junk"] = "j" * rng.randint(1, 8000)
        kind = rng.random()
        if kind < 0.25:
            body = bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 3000)))
        elif kind < 0.5:
            body = ("{" * rng.randint(1, 3000)).encode()
        elif kind < 0.6:
            body = b'{"campaign_id": "' + b"a" * rng.randint(1000, 1_200_000) + b'"}'
        elif kind < 0.75:
            body = json.dumps({"segment": {"rule": {"attr": "x\u0000", "op": rng.choice(["eq", "in", "drop table"]), "value": [1] * 50}},
                               "campaign_id": rng.choice(["ok-1", "", None, 5, "é" * 300]), "ids": [rng.random()]}).encode()
        else:
            body = b""
        if method in ("GET", "DELETE", "OPTIONS") and rng.random() < 0.7:
            body = b""
        try:
            # A raw socket: the request line and headers go out byte for byte, UTF-8 and all.
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            sock = socket.create_connection(("127.0.0.1", inst.port), timeout=20)
            sock.sendall(head.encode("utf-8", "surrogateescape") + body)
            resp = http.client.HTTPResponse(sock, method=method)
            resp.begin()
            data = resp.read()
            status = resp.status
            sock.close()
        except Exception as e:  # a refused connection or a reset is a failure of the daemon
            status, data = 599, str(e).encode()
        if status >= 500:
            bad_status += 1
            examples.append(f"{method} {path[:80]} -> {status} {data[:120]!r}")
        elif not path.isascii() or any(ord(c) < 32 for v in headers.values() for c in v):
            # Not HTTP: raw non-ASCII bytes in the request target or a control byte in a header. NIO's parser refuses it
            # before any route sees it, with an empty 400 and the connection closed.
            protocol += 1
            if status != 400:
                bad_shape += 1
                examples.append(f"{method} {path[:80]} (not HTTP) -> {status}")
        elif 400 <= status < 500 and path.startswith("/v1") and method != "HEAD":
            try:
                err = json.loads(data)["error"]
                assert isinstance(err["code"], str) and isinstance(err["message"], str)
            except Exception:
                bad_shape += 1
                examples.append(f"{method} {path[:80]} {[(k, len(v), v[:20]) for k, v in headers.items()]} body {len(body)} -> {status} "
                                f"without the error shape: {data[:120]!r}")
    return count, bad_status, bad_shape, protocol, examples[:5]


def fuzz(stack, count, http_count):
    stack.reset()
    psql(stack.pg, "INSERT INTO reach.recipients (user_id, name) SELECT 'u0000' || g, 'Fuzz ' || g FROM generate_series(1, 9) g "
                   "ON CONFLICT DO NOTHING")
    psql(stack.pg, "DELETE FROM reach.triggers WHERE id = 'fz'")
    psql(stack.pg, "INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES "
                   "('fz', 'fz', '{\"inapp\": 1}', '{\"body\": \"{{properties.k0}}!\"}', false)")
    config = stack.config("fuzz", {"inapp": "provider: inbox"})
    inst = Instance(stack, "fuzz", config).start()
    try:
        t0 = time.time()
        out = subprocess.run([stack.binary, "bench", "fuzz", "--config", config, "--count", str(count), "--personal-data"], env=stack.env,
                             capture_output=True, text=True, timeout=1800).stdout
        m = re.search(r"fuzz: (\d+) tasks \((\d+) valid\), (\d+) events \((\d+) valid\)", out)
        if not m:
            raise RuntimeError(f"bench fuzz printed {out!r}")
        tasks, valid_tasks, events, valid_events = map(int, m.groups())
        invalid = tasks + events - valid_tasks - valid_events

        def counts():
            return tuple(int(x) for x in psql(stack.pg, """
                SELECT (SELECT count(*) FROM reach.campaigns WHERE id LIKE 'f-%'),
                       (SELECT count(*) FROM reach.inbox WHERE campaign_id LIKE 't:fz:%'),
                       (SELECT count(*) FROM reach.dead_letters WHERE source = 'input')""").split("|"))
        deadline = time.time() + 900
        got = counts()
        while got != (valid_tasks, valid_events, invalid) and time.time() < deadline and inst.proc.poll() is None:
            time.sleep(1)
            got = counts()
        took = time.time() - t0
        # Offsets: the lag sampler (every 5 s) says 0 on every partition of both topics.
        lag_zero = False
        for _ in range(30):
            text = urllib.request.urlopen(f"http://127.0.0.1:{inst.port}/metrics", timeout=5).read().decode()
            lags = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("reach_kafka_consumer_lag{")]
            if lags and all(v == 0 for v in lags):
                lag_zero = True
                break
            time.sleep(1)
        rss_peak = proc_stats(inst.proc.pid)[0]
        requests, status5xx, shapeless, not_http, examples = http_fuzz(inst, http_count, random.Random(14), stack.env["REACH_CHAOS_TOKEN"])
        alive = inst.proc.poll() is None and inst.readyz()[0] == 200
        ok = got == (valid_tasks, valid_events, invalid) and lag_zero and alive and status5xx == 0 and shapeless == 0 and rss_peak < 512
        for e in examples:
            print("  http fuzz:", e, flush=True)
        return result("fuzz", ok, messages=tasks + events, valid_tasks=valid_tasks, valid_events=valid_events, invalid=invalid,
                      campaigns=got[0], event_sends=got[1], dead_letters=got[2], lag_zero=lag_zero, peak_rss_mb=round(rss_peak),
                      http_requests=requests, http_not_http_400=not_http, http_5xx=status5xx, http_4xx_without_shape=shapeless, alive=alive,
                      lost=max(0, valid_tasks - got[0]) + max(0, valid_events - got[1]), duplicates="0 (bound 0)",
                      seconds=round(took, 1))
    finally:
        inst.stop()


# --- scenario 3b: an SMTP server that drops the connection in DATA -----------
def smtp_drop(stack, users, fault_seconds):
    """The e-mail channel's SMTP server drops every connection in the middle of DATA for
    `fault_seconds`, then a good server (scripts/smtp_sink.py) takes its port. Every user ends
    `sent` or `dead` with a reason, and no message reaches the good server twice (a message cut
    off in DATA was never accepted)."""
    stack.reset()
    port = free_port()
    log = f"{stack.dir}/smtp-sink.jsonl"
    faulty = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "smtp_faults.py"), "--port", str(port), "--mode", "drop-in-data"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    faulty.stdout.readline()  # ready
    email = (f"provider: smtp, host: 127.0.0.1, port: {port}, from: \"CRM <crm@example.com>\", starttls: \"off\", "
             "batch_size: 50, concurrency: 2, timeout_ms: 2000, retry: {max_attempts: 4, base_ms: 200, max_ms: 1000}, "
             "circuit_breaker: {failure_rate: 0.5, window_seconds: 5, minimum_calls: 6, cool_down_ms: 2000}")
    config = stack.config("smtp-drop", {"email": email})
    inst = Instance(stack, "smtp-drop", config).start()
    cid = f"chaos-smtp-drop-{int(time.time())}"
    sink = None
    try:
        seen = []
        reader = threading.Thread(target=lambda: seen.extend(iter(faulty.stdout.readline, "")), daemon=True)
        reader.start()
        stack.publish(config, cid, users, channels={"email": 100})
        # The fault lasts `fault_seconds` from the first session it cuts.
        deadline = time.time() + 60
        while time.time() < deadline and not any("dropped in DATA" in line for line in seen):
            time.sleep(0.05)
        time.sleep(fault_seconds)
        faulty.terminate()
        faulty.wait(timeout=10)
        reader.join(timeout=5)
        drops = sum("dropped in DATA" in line for line in seen)
        sink = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "smtp_sink.py"), "--port", str(port), "--log", log,
                                 "--user", "crm", "--password", "unused"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        sink.stdout.readline()  # ready
        state = stack.wait_campaign(cid, 600)
        received = {}
        with open(log) as f:
            for line in f:
                mid = json.loads(line).get("message_id")
                received[mid] = received.get(mid, 0) + 1
        rows = psql(stack.pg, f"SELECT status, coalesce(reason, ''), message_id FROM reach.deliveries WHERE campaign_id = '{cid}'")
        terminal = sent_missing = no_reason = 0
        for line in filter(None, rows.splitlines()):
            status, reason, mid = line.split("|")
            terminal += status in TERMINAL
            sent_missing += status == "sent" and mid not in received
            no_reason += status in ("dead", "skipped") and not reason
        dups = sum(v - 1 for v in received.values() if v > 1)
        lost = users - terminal + sent_missing
        ok = state == "done" and lost == 0 and dups == 0 and no_reason == 0 and drops > 0
        return result("smtp-drop-in-data", ok, users=users, fault_s=fault_seconds, drops_in_data=drops, state=state, lost=lost,
                      duplicates=f"{dups} (bound 0)", delivered=len(received))
    finally:
        inst.stop()
        for p in (faulty, sink):
            if p and p.poll() is None:
                p.kill()


# --- scenario 5: graceful shutdown under load -------------------------------
def shutdown(stack, users):
    """SIGTERM mid-campaign: in-flight batches finish and are recorded (every id the provider has is a
    `sent` row before the restart), the process exits 0 within the grace, and the restart resumes with
    no duplicate at all, since this is not a crash."""
    stack.reset()
    rate = max(200, users // 10)  # about 10 s of sending
    channels = {"push": f"batch_size: 100, concurrency: 2, rate_per_second: {rate}"}
    config = stack.config("shutdown", channels)
    inst = Instance(stack, "shutdown", config).start()
    cid = f"chaos-shutdown-{int(time.time())}"
    try:
        stack.publish(config, cid, users, channels={"push": 100})
        deadline = time.time() + 120
        while stack.provider_stats()["messages"] < users // 4 and time.time() < deadline:
            time.sleep(0.1)
        took = inst.stop(grace=60)
        code = inst.proc.returncode
        at_stop = stack.provider_ids()
        sent_rows = set(psql(stack.pg, f"SELECT message_id FROM reach.deliveries WHERE campaign_id = '{cid}' AND status = 'sent'").split())
        unrecorded = sum(1 for mid in at_stop if mid not in sent_rows)
        inst.start()
        state = stack.wait_campaign(cid, 600)
        c = stack.check(cid, users)
        ok = state == "done" and c["lost"] == 0 and c["duplicates"] == 0 and took <= 10.5 and code == 0 and unrecorded == 0 \
            and 0 < len(at_stop) < users
        return result("shutdown", ok, users=users, exit_s=round(took, 2), grace_s=10, exit_code=code, sent_before_stop=len(at_stop),
                      at_provider_without_row=unrecorded, state=state, lost=c["lost"], duplicates=f"{c['duplicates']} (bound 0)")
    finally:
        inst.stop()


# --- scenario 6: soak --------------------------------------------------------
def histogram(text, name, labels):
    """Cumulative bucket counts {le: count} of one histogram series."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{") and labels in line:
            le = re.search(r'le="([^"]+)"', line)[1]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def p99(before, after):
    """The 99th percentile bucket bound of what the histogram gained between two snapshots."""
    deltas = sorted((le, after.get(le, 0) - before.get(le, 0)) for le in after)
    total = deltas[-1][1] if deltas else 0
    if total <= 0:
        return None
    for le, count in deltas:
        if count >= 0.99 * total:
            return le
    return deltas[-1][0]


def soak(stack, seconds, users, event_rate):
    """A mixed load for `seconds`: a campaign of `users` every 10 s, `event_rate` trigger events/s, and a
    provider that answers every 10th request 503 (retries all along). RSS, open fds and sockets must stay
    flat after the warm-up, and the event p99 must not drift."""
    stack.reset()
    stack.provider_mode("flaky")
    channels = {"sms": "batch_size: 100, concurrency: 2, retry: {max_attempts: 5, base_ms: 200, max_ms: 2000}",
                "push": "batch_size: 100, concurrency: 2, retry: {max_attempts: 5, base_ms: 200, max_ms: 2000}",
                "email": "batch_size: 100, concurrency: 2, retry: {max_attempts: 5, base_ms: 200, max_ms: 2000}"}
    config = stack.config("soak", channels)
    inst = Instance(stack, "soak", config).start()
    samples = []  # (t, rss MB, fds, sockets, histogram)
    try:
        load = stack.events(config, event_rate, seconds, users)
        t0 = time.time()
        campaigns = []
        next_campaign = t0
        while time.time() - t0 < seconds:
            if time.time() >= next_campaign:
                cid = f"chaos-soak-{len(campaigns)}-{int(time.time())}"
                stack.publish(config, cid, users)
                campaigns.append(cid)
                next_campaign += 10
            rss, fds = inst.rss_fds()
            sockets = sum(1 for fd in os.listdir(f"/proc/{inst.proc.pid}/fd")
                          if os.readlink(f"/proc/{inst.proc.pid}/fd/{fd}").startswith("socket:"))
            text = urllib.request.urlopen(f"http://127.0.0.1:{inst.port}/metrics", timeout=5).read().decode()
            # Connections as the servers count them: PostgreSQL backends and Redis clients.
            pg_conns = int(psql(stack.pg, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'reach' AND pid <> pg_backend_pid()"))
            info = subprocess.run(["redis-cli", "-p", str(stack.redis), "info", "clients"], capture_output=True, text=True).stdout
            redis_conns = int(re.search(r"connected_clients:(\d+)", info)[1])
            samples.append((time.time() - t0, rss, fds, sockets, histogram(text, "reach_end_to_end_seconds", 'kind="event"'),
                            pg_conns, redis_conns))
            time.sleep(2)
        published = load.result()
        stack.provider_mode("ok")
        states = [stack.wait_campaign(cid, 600) for cid in campaigns]
        events_done = stack.wait_events(published, 300)
        ids = stack.provider_ids()  # once: a long soak's provider holds millions of ids
        checks = [stack.check(cid, users, ids=ids) for cid in campaigns] + [stack.check("t:chaos-ping:%", published, ids=ids)]
        lost = sum(c["lost"] for c in checks)
        dups = sum(c["duplicates"] for c in checks)
        # Warm-up is the first fifth; flat means the last sample is within a margin of the warm-up's largest.
        warm = [x for x in samples if x[0] <= seconds / 5] or samples[:1]
        tail = samples[-1]
        rss_ok = tail[1] <= max(x[1] for x in warm) * 1.5 + 32
        fds_ok = tail[2] <= max(x[2] for x in warm) + 24
        sockets_ok = tail[3] <= max(x[3] for x in warm) + 16
        conns_ok = max(x[5] for x in samples) <= max(x[5] for x in warm) + 4 and max(x[6] for x in samples) <= max(x[6] for x in warm) + 4
        third = max(1, len(samples) // 3)
        early = p99(samples[0][4], samples[third][4])
        late = p99(samples[-third - 1][4], samples[-1][4])
        drift_ok = early is None or late is None or late <= max(early * 2, early + 0.25)
        ok = all(s == "done" for s in states) and events_done and lost == 0 and dups == 0 and rss_ok and fds_ok and sockets_ok and conns_ok and drift_ok
        return result("soak", ok, seconds=seconds, campaigns=len(campaigns), events=published,
                      rss_mb=f"{round(warm[-1][1])}->{round(tail[1])}", fds=f"{max(x[2] for x in warm)}->{tail[2]}",
                      sockets=f"{max(x[3] for x in warm)}->{tail[3]}", pg_conns=f"{max(x[5] for x in warm)}->{max(x[5] for x in samples)}",
                      redis_conns=f"{max(x[6] for x in warm)}->{max(x[6] for x in samples)}", event_p99_s=f"{early}->{late}", lost=lost,
                      duplicates=f"{dups} (bound 0)")
    finally:
        stack.provider_mode("ok")
        inst.stop()


def log_scan(stack):
    """Every log line reachd wrote in this run, scanned for an unmasked phone number (the seeded
    `138…` numbers, written in any grouping), e-mail address, ID number or the API token."""
    phone = re.compile(r"(?<![\d*])(?:\+?86[ -]?)?138[ -]?\d{4}[ -]?\d{4}(?!\d)")
    email = re.compile(r"[A-Za-z0-9._%+-]{2,}@example\.com")
    national = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")
    token = stack.env["REACH_CHAOS_TOKEN"]
    lines = found = 0
    examples = []
    for name in sorted(os.listdir(stack.dir)):
        if not (name.startswith("reachd-") and name.endswith(".log")):
            continue
        with open(os.path.join(stack.dir, name), errors="replace") as f:
            for line in f:
                lines += 1
                hit = phone.search(line) or email.search(line) or national.search(line) or (token in line and re.search(re.escape(token), line))
                if hit:
                    found += 1
                    if len(examples) < 3:
                        examples.append(f"{name}: {line.strip()[:200]}")
    # What operators read besides logs: the rows' last errors and delivery dead letters (an input
    # dead letter keeps the message as it came, by design).
    stored = psql(stack.pg, "SELECT coalesce(last_error, '') FROM reach.deliveries WHERE last_error IS NOT NULL "
                            "UNION ALL SELECT coalesce(error, '') || ' ' || coalesce(payload::text, '') FROM reach.dead_letters "
                            "WHERE source = 'delivery'")
    for line in stored.splitlines():
        lines += 1
        if phone.search(line) or email.search(line) or national.search(line) or token in line:
            found += 1
            if len(examples) < 3:
                examples.append(f"PostgreSQL: {line.strip()[:200]}")
    for e in examples:
        print("  unmasked:", e, flush=True)
    return result("log-scan", found == 0 and lines > 0, lines=lines, unmasked=found, lost=0, duplicates="0 (bound 0)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=[], help="which to run (default: all)")
    parser.add_argument("--small", action="store_true", help="the suite's sizes")
    parser.add_argument("--soak-seconds", type=int, default=0, help="soak: how long (default 120 with --small, else 1800)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "reachd"))
    args = parser.parse_args()
    wanted = set(args.scenarios) or {"kill9", "servers", "providers", "smtp", "failover", "shutdown", "fuzz", "soak"}
    s = args.small
    stack = Stack(args.binary)
    try:
        stack.start()
        stack.seed(4000 if s else 200000)
        users = 4000 if s else 200000
        if "kill9" in wanted:
            kill9(stack, users, kills=3 if s else 20, event_rate=100 if s else 500, seconds_between=2 if s else 3)
        if "servers" in wanted:
            which = [("redis", "stop"), ("postgres", "kill"), ("kafka", "stop")] if s else \
                [("redis", "kill"), ("redis", "stop"), ("postgres", "kill"), ("postgres", "stop"), ("kafka", "stop")]
            servers(stack, 4000 if s else 60000, outage=4 if s else 30, event_rate=50 if s else 200, which=which)
        if "providers" in wanted:
            providers(stack, 1000 if s else 20000, fault_seconds=4 if s else 15,
                      modes=["reset", "malformed", "storm429", "blackhole"] if s else
                      ["slow", "reset", "cut", "malformed", "partial", "storm429", "blackhole"])
        if "smtp" in wanted:
            smtp_drop(stack, 300 if s else 5000, fault_seconds=4 if s else 15)
        if "failover" in wanted:
            providers(stack, 1000 if s else 20000, fault_seconds=4 if s else 15, modes=["reset", "storm429"] if s else
                      ["slow", "reset", "cut", "storm429", "blackhole"], tag="failover", backup=True)
        if "shutdown" in wanted:
            shutdown(stack, 4000 if s else 60000)
        if "fuzz" in wanted:
            fuzz(stack, 2000 if s else 10000, 500 if s else 5000)
        if "soak" in wanted:
            soak(stack, args.soak_seconds or (120 if s else 1800), 2000 if s else 20000, 50 if s else 200)
        log_scan(stack)
    finally:
        stack.stop()
    failed = [r for r in RESULTS if not r[1]]
    print(f"chaos: {len(RESULTS) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed or not RESULTS else 0)


if __name__ == "__main__":
    main()
