#!/usr/bin/env python3
"""Checks the deployment files in deploy/ without a Docker daemon or a cluster.

What stands in for `docker compose up`, `kubectl apply` and `systemctl start`:

  kubernetes  every file in deploy/kubernetes validates with kubernetes-validate
              (--strict, Kubernetes K8S_VERSION); the kustomization renders with
              `kubectl kustomize` (when kubectl is there) and its output validates
              too; secretKeyRef / configMap references resolve to the Secret of
              secret.example.yaml and the ConfigMaps beside them; the grace period
              outlasts preStop + shutdown.grace_period_ms
  compose     deploy/compose.yaml loads; every depends_on / service: reference
              names a service; every bind-mounted host path exists; every service
              has an image or builds deploy/Dockerfile; service_healthy targets
              have a health check; stop_grace_period outlasts the grace period;
              Prometheus scrapes every reachd instance (and `promtool check config`
              passes); Grafana's provisioning matches the mounts
  dockerfile  every package the Dockerfile apt-get installs (build and runtime
              stages) exists in Debian (`apt-cache show`), on the release the
              Dockerfile builds on
  config      `reachd config check` passes on every reachd configuration that
              compose and Kubernetes mount, with the environment they give it
              (compose's ${VAR:-default}s; Kubernetes secrets as the placeholders
              of secret.example.yaml)
  systemd     `systemd-analyze verify` on deploy/reachd.service (skipped, with a
              note, where systemd-analyze is missing)

Prints one line per check and exits 1 if any failed. The reachd binary is
$REACHD, else .build/debug/reachd, else `swift build --show-bin-path`'s.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_DIR = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "reachd.service"
K8S_VERSION = "1.32.0"  # the kubectl of Debian bookworm's era; kubernetes-validate ships 1.25-1.37
DEFAULT_CONFIG = "/etc/reachd/reachd.yaml"  # the image's CMD
REACHD_SUBCOMMANDS_WITH_CONFIG = {"serve", "migrate", "config"}

failures = 0


def report(name, problems, summary):
    """One line per check; its problems indented below it."""
    global failures
    if problems:
        failures += 1
        print(f"FAIL {name}: {len(problems)} problem(s)")
        for p in problems:
            print(f"     - {p}")
    else:
        print(f"ok   {name}: {summary}")
    sys.stdout.flush()


def skip(name, why):
    print(f"skip {name}: {why}")
    sys.stdout.flush()


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def run(cmd, env=None, timeout=300):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout


def grace_ms(config_text):
    c = yaml.safe_load(config_text) or {}
    return int(((c.get("shutdown") or {}).get("grace_period_ms")) or 15000)


# ---------------------------------------------------------------- kubernetes

def kubernetes_docs():
    """(file, document) for every manifest file in deploy/kubernetes."""
    out = []
    for f in sorted(K8S_DIR.glob("*.y*ml")):
        for d in load_all(f):
            out.append((f, d))
    return out


def pod_templates(docs):
    """(file, kind/name, pod spec) of every workload."""
    for f, d in docs:
        kind = d.get("kind")
        name = f"{kind}/{(d.get('metadata') or {}).get('name')}"
        spec = d.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
            yield f, name, d, ((spec.get("template") or {}).get("spec") or {})
        elif kind == "CronJob":
            yield f, name, d, (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
        elif kind == "Pod":
            yield f, name, d, spec


def kubernetes_validate():
    """The kubernetes-validate command: the module of this python3, else the one on PATH."""
    try:
        import kubernetes_validate  # noqa: F401
        return [sys.executable, "-m", "kubernetes_validate"]
    except ImportError:
        return ["kubernetes-validate"] if shutil.which("kubernetes-validate") else None


def validate_file(path, problems, shown=None):
    code, out = run(kubernetes_validate() + ["-k", K8S_VERSION, "--strict", "--quiet", str(path)])
    text = out.strip().replace(str(path), shown or rel(path))
    # --quiet prints only warnings and failures. kubernetes-validate exits 0 on an
    # unknown apiVersion/kind ("Couldn't find schema"): a typo must not pass, so any output fails.
    if code != 0 or text:
        problems.append(f"kubernetes-validate exited {code}: {text}")


def check_kubernetes():
    name = "kubernetes"
    problems = []
    if not kubernetes_validate():
        report(name, ["kubernetes-validate is not installed (scripts/setup installs it from PyPI)"], "")
        return
    files = sorted(K8S_DIR.glob("*.y*ml"))
    if not files:
        report(name, [f"no manifests in {rel(K8S_DIR)}"], "")
        return
    kustomized = []
    for f in files:
        docs = load_all(f)
        if any(d.get("kind") == "Kustomization" for d in docs):
            kustomized.append(f)
            for d in docs:
                for r in d.get("resources") or []:
                    if not (f.parent / r).exists():
                        problems.append(f"{rel(f)}: resource {r} does not exist")
            if shutil.which("kubectl"):
                code, out = run(["kubectl", "kustomize", str(f.parent)])
                if code != 0:
                    problems.append(f"{rel(f)}: kubectl kustomize failed: {out.strip()}")
                else:
                    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="kustomized-", delete=False) as t:
                        t.write(out)
                    try:
                        validate_file(t.name, problems, shown=f"(kubectl kustomize {rel(f.parent)})")
                    finally:
                        os.unlink(t.name)
        else:
            validate_file(f, problems)

    docs = kubernetes_docs()
    problems += kubernetes_references(docs)
    rendered = " (kustomization rendered with kubectl kustomize and validated)" if kustomized and shutil.which("kubectl") else ""
    report(name, problems, f"{len(files)} files valid for Kubernetes {K8S_VERSION} (--strict){rendered}; "
                           "secret/configMap references resolve; grace period outlasts preStop + shutdown")


def example_secrets(docs):
    """Secret name → {key: value} from the *.example.yaml Secrets (placeholders)."""
    secrets = {}
    for _, d in docs:
        if d.get("kind") == "Secret":
            data = dict(d.get("stringData") or {})
            data.update({k: "dummy" for k in (d.get("data") or {})})
            secrets[d["metadata"]["name"]] = data
    return secrets


def config_maps(docs):
    return {d["metadata"]["name"]: d.get("data") or {} for _, d in docs if d.get("kind") == "ConfigMap"}


def reachd_config_path(args):
    """The --config of a reachd command line, if it runs a subcommand that reads one."""
    args = [str(a) for a in args or []]
    if args and args[0].endswith("reachd"):
        args = args[1:]
    if not args or args[0] not in REACHD_SUBCOMMANDS_WITH_CONFIG:
        return None
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def kubernetes_reachd_configs(docs):
    """(label, config text, environment, problems) for every reachd container that reads a ConfigMap file."""
    secrets = example_secrets(docs)
    maps = config_maps(docs)
    out = []
    for f, name, _, spec in pod_templates(docs):
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for c in spec.get("containers") or []:
            path = reachd_config_path((c.get("command") or []) + (c.get("args") or []))
            if path is None:
                continue
            label = f"{rel(f)} {name} container {c.get('name')}"
            problems = []
            env = {}
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = str(e["value"])
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    value = secrets.get(ref.get("name"), {}).get(ref.get("key"))
                    if value is not None:
                        env[e["name"]] = value
                    elif not ref.get("optional"):
                        problems.append(f"{label}: env {e['name']} needs key {ref.get('key')!r} of Secret "
                                        f"{ref.get('name')!r}, which no *.example.yaml Secret documents")
            if c.get("envFrom"):
                problems.append(f"{label}: envFrom hides which variables the configuration gets; list them in env")
            text = None
            for m in c.get("volumeMounts") or []:
                mount = m.get("mountPath", "").rstrip("/")
                if path == mount or path.startswith(mount + "/"):
                    v = volumes.get(m.get("name")) or {}
                    cm = v.get("configMap")
                    if not cm:
                        problems.append(f"{label}: {path} is on volume {m.get('name')!r}, which is not a ConfigMap")
                        break
                    filename = m.get("subPath") or path[len(mount) + 1:]
                    key = filename
                    for item in cm.get("items") or []:
                        if item.get("path") == filename:
                            key = item.get("key")
                    data = maps.get(cm.get("name"))
                    if data is None:
                        problems.append(f"{label}: ConfigMap {cm.get('name')!r} is not in {rel(K8S_DIR)}")
                    elif key not in data:
                        problems.append(f"{label}: ConfigMap {cm.get('name')!r} has no key {key!r}")
                    else:
                        text = data[key]
                    break
            else:
                problems.append(f"{label}: --config {path} is not on any volumeMount")
            out.append((label, text, env, problems))
    return out


def kubernetes_references(docs):
    problems = []
    secrets = example_secrets(docs)
    names = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for _, d in docs}
    for f, name, d, spec in pod_templates(docs):
        label = f"{rel(f)} {name}"
        for v in spec.get("volumes") or []:
            cm = (v.get("configMap") or {}).get("name")
            if cm and ("ConfigMap", cm) not in names:
                problems.append(f"{label}: volume {v.get('name')} names ConfigMap {cm!r}, not defined in {rel(K8S_DIR)}")
        for c in spec.get("containers") or []:
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name") not in secrets:
                    problems.append(f"{label}: env {e['name']} reads Secret {ref.get('name')!r}; "
                                    "document it in a *.example.yaml Secret (placeholders only)")
    # The grace period: reachd's shutdown, plus the preStop hook, must end before SIGKILL.
    texts = {label: text for label, text, _, _ in kubernetes_reachd_configs(docs)}
    for f, name, d, spec in pod_templates(docs):
        if d.get("kind") != "Deployment":
            continue
        for c in spec.get("containers") or []:
            args = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
            if args and args[0].endswith("reachd"):
                args = args[1:]
            text = texts.get(f"{rel(f)} {name} container {c.get('name')}")
            if not args or args[0] != "serve" or text is None:
                continue
            grace = grace_ms(text) / 1000
            pre_stop = (c.get("lifecycle") or {}).get("preStop") or {}
            pre = 0.0
            cmd = (pre_stop.get("exec") or {}).get("command") or []
            if len(cmd) == 2 and cmd[0].endswith("sleep"):
                pre = float(cmd[1])
            if (pre_stop.get("sleep") or {}).get("seconds"):
                pre = float(pre_stop["sleep"]["seconds"])
            tgps = spec.get("terminationGracePeriodSeconds", 30)
            if not tgps > pre + grace:
                problems.append(f"{rel(f)} {name}: terminationGracePeriodSeconds {tgps} must exceed preStop {pre:g} s "
                                f"+ shutdown.grace_period_ms {grace:g} s")
            for probe, want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                got = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
                if got != want:
                    problems.append(f"{rel(f)} {name}: {probe} should GET {want}, not {got}")
        if (d.get("spec") or {}).get("replicas", 1) < 2:
            problems.append(f"{rel(f)} {name}: run at least 2 replicas")
    return problems


# ------------------------------------------------------------------- compose

INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, environ):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$; from `environ` only."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        var = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        have = environ.get(var)
        if op in (":-", ":?"):
            if have:
                return have
            return arg if op == ":-" else "required-by-compose"
        if op in ("-", "?"):
            if have is not None:
                return have
            return arg if op == "-" else "required-by-compose"
        return have or ""
    return INTERPOLATION.sub(sub, str(value))


def service_refs(svc):
    """(where, name) for every reference from one service to another."""
    deps = svc.get("depends_on") or []
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        yield "depends_on", dep
    for key in ("network_mode", "pid", "ipc"):
        v = svc.get(key)
        if isinstance(v, str) and v.startswith("service:"):
            yield key, v.split(":", 1)[1]
    for v in svc.get("volumes_from") or []:
        v = str(v)
        if v.startswith("container:"):
            continue
        yield "volumes_from", v.split(":", 1)[1].split(":")[0] if v.startswith("service:") else v.split(":")[0]
    ext = svc.get("extends")
    if isinstance(ext, dict) and "service" in ext and "file" not in ext:
        yield "extends", ext["service"]
    for link in svc.get("links") or []:
        yield "links", str(link).split(":")[0]


def bind_mounts(svc):
    """(host source, container target) of every bind mount of a service."""
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                yield parts[0], parts[1]
        elif isinstance(v, dict) and v.get("type") == "bind":
            yield v.get("source"), v.get("target")


def builds_dockerfile(svc):
    build = svc.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE.parent / build.get("context", ".")).resolve()
    return context, (context / build.get("dockerfile", "Dockerfile")).resolve()


def compose_reachd_services(services):
    """(service name, config path in the container) of every service that runs reachd with a configuration."""
    for name, svc in services.items():
        b = builds_dockerfile(svc)
        if not (b and b[1] == DOCKERFILE.resolve()) and "reachd" not in str(svc.get("image", "")):
            continue
        command = svc.get("command") or ["serve", "--config", DEFAULT_CONFIG]
        if isinstance(command, str):
            command = command.split()
        path = reachd_config_path(command)
        if path is not None:
            yield name, svc, path


def compose_environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: interpolate(v, {}) for k, v in env.items() if v is not None}


def duration_seconds(text):
    total = 0.0
    for amount, unit in re.findall(r"([\d.]+)(us|ms|s|m|h)", str(text)):
        total += float(amount) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_compose():
    name = "compose"
    problems = []
    try:
        doc = load_all(COMPOSE)[0]
    except Exception as e:  # noqa: BLE001 - any load error is the finding
        report(name, [f"{rel(COMPOSE)} does not load as YAML: {e}"], "")
        return
    services = doc.get("services") or {}
    if not services:
        report(name, [f"{rel(COMPOSE)} has no services"], "")
        return
    refs = mounts = 0
    for sname, svc in services.items():
        for where, target in service_refs(svc):
            refs += 1
            if target not in services:
                problems.append(f"service {sname}: {where} names {target!r}, which is not a service")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            for dep, how in deps.items():
                cond = (how or {}).get("condition", "service_started")
                if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
                    problems.append(f"service {sname}: depends_on {dep} has unknown condition {cond!r}")
                target = services.get(dep) or {}
                if cond == "service_healthy":
                    hc = target.get("healthcheck")
                    image_hc = (builds_dockerfile(target) or (None, None))[1] == DOCKERFILE.resolve()
                    if (hc is None and not image_hc) or (hc or {}).get("disable"):
                        problems.append(f"service {sname}: waits for {dep} to be healthy, but {dep} has no health check")
                if cond == "service_completed_successfully" and target.get("restart", "no") != "no":
                    problems.append(f"service {sname}: waits for one-shot {dep} to complete, but {dep} restarts "
                                    f"({target.get('restart')})")
        for source, target in bind_mounts(svc):
            mounts += 1
            path = (COMPOSE.parent / os.path.expanduser(source)).resolve()
            if not path.exists():
                problems.append(f"service {sname}: bind mount {source} -> {target}: {rel(path)} does not exist")
            elif not str(path).startswith(str(ROOT) + os.sep):
                problems.append(f"service {sname}: bind mount {source} is outside the repository")
        b = builds_dockerfile(svc)
        if b:
            context, dockerfile = b
            if not context.is_dir():
                problems.append(f"service {sname}: build context {rel(context)} is not a directory")
            if dockerfile != DOCKERFILE.resolve():
                problems.append(f"service {sname}: builds {rel(dockerfile)}, not {rel(DOCKERFILE)}")
        elif not svc.get("image"):
            problems.append(f"service {sname}: neither image nor build")

    reachd = list(compose_reachd_services(services))
    servers = [s for s, svc, _ in reachd if (svc.get("command") or ["serve"])[0] == "serve"]
    for sname, svc, path in reachd:
        targets = {t: s for s, t in bind_mounts(svc)}
        if path not in targets:
            problems.append(f"service {sname}: reads {path}, which is not bind-mounted from the repository")
            continue
        if sname in servers:
            text = (COMPOSE.parent / targets[path]).read_text(encoding="utf-8") if (COMPOSE.parent / targets[path]).exists() else ""
            stop = duration_seconds(svc.get("stop_grace_period", "10s"))
            if not stop > grace_ms(text) / 1000:
                problems.append(f"service {sname}: stop_grace_period {stop:g} s must exceed shutdown.grace_period_ms "
                                f"{grace_ms(text) / 1000:g} s of {targets[path]}")
    if len(servers) < 2:
        problems.append(f"only {len(servers)} reachd serve service(s); the stack runs two in one consumer group")

    problems += check_prometheus(services, servers)
    problems += check_grafana(services)
    report(name, problems, f"{len(services)} services; {refs} service references and {mounts} bind mounts resolve; "
                           f"images/builds set; {len(servers)} reachd instances scraped by Prometheus")


def check_prometheus(services, servers):
    problems = []
    prom = [(n, s) for n, s in services.items() if "prometheus" in str(s.get("image", ""))]
    if not prom:
        return ["no Prometheus service"]
    for pname, svc in prom:
        for source, target in bind_mounts(svc):
            path = (COMPOSE.parent / source).resolve()
            if not path.is_file() or not target.endswith(("prometheus.yml", "prometheus.yaml")):
                continue
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            scraped = set()
            for job in config.get("scrape_configs") or []:
                for sc in job.get("static_configs") or []:
                    scraped |= {t.split(":")[0] for t in sc.get("targets") or []}
            for s in servers:
                host = services[s].get("hostname", s)
                if s not in scraped and host not in scraped:
                    problems.append(f"{rel(path)} does not scrape reachd service {s}")
            # Rule files are read relative to the config; they must be mounted beside it.
            mounted = {t for _, t in bind_mounts(svc)}
            for rule in config.get("rule_files") or []:
                inside = rule if rule.startswith("/") else str(Path(target).parent / rule)
                if inside not in mounted:
                    problems.append(f"service {pname}: rule file {rule} ({inside}) is not mounted")
            if shutil.which("promtool"):
                code, out = run(["promtool", "check", "config", str(path)])
                if code != 0:
                    problems.append(f"promtool check config {rel(path)}: {out.strip()}")
    return problems


def check_grafana(services):
    problems = []
    for gname, svc in services.items():
        if "grafana" not in str(svc.get("image", "")):
            continue
        mounts = list(bind_mounts(svc))
        prov = next(((s, t) for s, t in mounts if t.rstrip("/") == "/etc/grafana/provisioning"), None)
        if not prov:
            problems.append(f"service {gname}: nothing mounted at /etc/grafana/provisioning")
            continue
        base = (COMPOSE.parent / prov[0]).resolve()
        uids = set()
        for f in sorted((base / "datasources").glob("*.y*ml")):
            for d in load_all(f):
                uids |= {ds.get("uid") for ds in d.get("datasources") or []}
        if "prometheus" not in uids:
            problems.append(f"{rel(base)}/datasources: no datasource with uid 'prometheus'")
        dirs = []
        for f in sorted((base / "dashboards").glob("*.y*ml")):
            for d in load_all(f):
                dirs += [((p.get("options") or {}).get("path") or "").rstrip("/") for p in d.get("providers") or []]
        if not dirs:
            problems.append(f"{rel(base)}/dashboards: no dashboard provider")
        for s, t in mounts:
            if t.endswith(".json") and str(Path(t).parent) not in dirs:
                problems.append(f"service {gname}: dashboard {t} is not in a provider's path {dirs}")
        if not any(t.endswith(".json") and str(Path(t).parent) in dirs for _, t in mounts):
            problems.append(f"service {gname}: no dashboard JSON mounted where a provider loads it")
    return problems


# ---------------------------------------------------------------- dockerfile

def dockerfile_stages():
    """[(FROM line, [packages apt-get installed in that stage])], ARG defaults applied."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    args = {}
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args.setdefault(k.strip(), v.strip())
        elif word == "FROM":
            stages.append([re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest), []])
        elif word == "RUN" and stages:
            for m in re.finditer(r"apt-get\s+(?:-\S+\s+)*install\s+([^;&|]*)", rest):
                stages[-1][1] += [t for t in m.group(1).split() if not t.startswith("-") and "=" not in t]
    return stages


def os_release():
    info = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                info[k] = v.strip('"')
    except OSError:
        pass
    return info


def check_dockerfile():
    name = "dockerfile"
    problems = []
    if not DOCKERFILE.exists():
        report(name, [f"{rel(DOCKERFILE)} is missing"], "")
        return
    if not shutil.which("apt-cache"):
        report(name, ["apt-cache is missing: the package names can only be checked on Debian"], "")
        return
    stages = dockerfile_stages()
    release = os_release()
    here = release.get("VERSION_CODENAME", "?")
    for base, _ in stages:
        if ("debian" in base or "bookworm" in base or "trixie" in base) and here not in base:
            problems.append(f"stage FROM {base}: this machine is Debian {here}, so apt-cache here cannot vouch for "
                            "that release's package names")
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*_Packages*")):
        run(["apt-get", "update", "-qq"], timeout=600)
    packages = []
    for base, pkgs in stages:
        if not pkgs:
            continue
        for p in pkgs:
            packages.append(p)
            code, out = run(["apt-cache", "show", p])
            if code != 0 or not out.strip():
                problems.append(f"stage FROM {base}: package {p!r} does not exist in Debian {here} "
                                f"(apt-cache show: {out.strip().splitlines()[-1] if out.strip() else 'nothing'})")
    runtime = stages[-1][1] if stages else []
    for needed in ("librdkafka1", "libpq5", "ca-certificates", "curl"):
        if needed not in runtime:
            problems.append(f"the runtime stage does not install {needed}")
    if not any(p.startswith("libhiredis") for p in runtime):
        problems.append("the runtime stage does not install hiredis (libhiredis*)")
    text = DOCKERFILE.read_text(encoding="utf-8")
    for directive in ("HEALTHCHECK", "STOPSIGNAL SIGTERM", "USER "):
        if not re.search(rf"^{directive}", text, re.M):
            problems.append(f"no {directive.strip()} in the Dockerfile")
    report(name, problems, f"{len(packages)} apt packages over {sum(1 for _, p in stages if p)} stages exist in Debian {here} "
                           f"({', '.join(runtime)} at runtime)")


# -------------------------------------------------------------------- config

def find_reachd():
    if os.environ.get("REACHD"):
        return os.environ["REACHD"]
    debug = ROOT / ".build" / "debug" / "reachd"
    if debug.exists():
        return str(debug)
    if shutil.which("swift"):
        code, out = run(["swift", "build", "--package-path", str(ROOT), "--show-bin-path"])
        if code == 0:
            candidate = Path(out.strip().splitlines()[-1]) / "reachd"
            if candidate.exists():
                return str(candidate)
    return None


def check_configs():
    name = "config"
    problems = []
    reachd = find_reachd()
    if not reachd:
        report(name, ["no reachd binary: build it (swift build) or set REACHD=/path/to/reachd"], "")
        return
    runs = []  # (label, file, env)
    try:
        services = (load_all(COMPOSE)[0] or {}).get("services") or {}
    except Exception as e:  # noqa: BLE001
        services = {}
        problems.append(f"{rel(COMPOSE)} does not load: {e}")
    for sname, svc, path in compose_reachd_services(services):
        targets = {t: s for s, t in bind_mounts(svc)}
        if path in targets:
            runs.append((f"compose service {sname}", (COMPOSE.parent / targets[path]).resolve(), compose_environment(svc)))
    temp = tempfile.mkdtemp(prefix="check-deploy-")
    try:
        for label, text, env, found in kubernetes_reachd_configs(kubernetes_docs()):
            problems += found
            if text is None:
                continue
            f = Path(temp) / f"{len(runs)}.yaml"
            f.write_text(text, encoding="utf-8")
            runs.append((label, f, env))
        if not runs:
            problems.append("compose and Kubernetes mount no reachd configuration")
        files = set()
        for label, f, env in runs:
            base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZDIR") if k in os.environ}
            code, out = run([reachd, "config", "check", "--config", str(f)], env={**base, **env}, timeout=60)
            if code != 0:
                problems.append(f"{label}: reachd config check --config {rel(f) if str(f).startswith(str(ROOT)) else 'ConfigMap data'} "
                                f"with {sorted(env)} exited {code}: {out.strip()}")
            files.add(rel(f) if str(f).startswith(str(ROOT)) else "k8s ConfigMap")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    report(name, problems, f"reachd config check passes for {len(runs)} reachd containers ({', '.join(sorted(files))}) "
                           f"with their environment ({rel(reachd)})")


# ------------------------------------------------------------------- systemd

def check_systemd():
    name = "systemd"
    if not shutil.which("systemd-analyze"):
        skip(name, "systemd-analyze is not installed; deploy/reachd.service was not verified")
        return
    problems = []
    unit_text = UNIT.read_text(encoding="utf-8")
    # A throwaway root: the stock units (sysinit.target, …) and a stub for every
    # Exec* program, so that verify checks the unit, not whether reachd is installed here.
    with tempfile.TemporaryDirectory(prefix="check-unit-") as root:
        units = next((p for p in ("/usr/lib/systemd/system", "/lib/systemd/system") if Path(p).is_dir()), None)
        if units:
            shutil.copytree(units, Path(root) / "usr/lib/systemd/system", symlinks=True)
        for m in re.finditer(r"^Exec\w*=[-@:+!]*(/\S+)", unit_text, re.M):
            stub = Path(root) / m.group(1).lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
        target = Path(root) / "etc/systemd/system" / UNIT.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(unit_text, encoding="utf-8")
        code, out = run(["systemd-analyze", "verify", f"--root={root}", UNIT.name])
        # verify exits 0 on unknown keys and bad values ("…, ignoring"): any output is a finding.
        if code != 0 or out.strip():
            problems.append(f"systemd-analyze verify {rel(UNIT)} exited {code}: {out.strip().replace(root, '')}")
    for key in ("WorkingDirectory=/var/lib/reachd", "StateDirectory=reachd", "ReadWritePaths=/var/lib/reachd"):
        if key not in unit_text:
            problems.append(f"{rel(UNIT)}: no {key} (provider: log writes relative to the working directory)")
    report(name, problems, f"systemd-analyze verify {rel(UNIT)} is clean")


def main():
    os.chdir(ROOT)
    for check in (check_kubernetes, check_compose, check_dockerfile, check_configs, check_systemd):
        try:
            check()
        except Exception as e:  # noqa: BLE001 - a crash in one check is reported, the others still run
            report(check.__name__.replace("check_", ""), [f"the check itself failed: {type(e).__name__}: {e}"], "")
    if failures:
        print(f"check_deploy: {failures} check(s) failed")
        return 1
    print("check_deploy: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
