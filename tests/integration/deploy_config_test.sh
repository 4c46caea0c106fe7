#!/usr/bin/env bash
# Validates the deployment files as far as that is possible without a Docker engine or a
# Kubernetes cluster:
#   - deploy/docker-compose.yml: `docker-compose config`, and that its services, ports, health
#     checks and start order agree with deploy/cluster.compose.json and docs/CONTRACTS.md;
#   - deploy/prometheus/*.yml: `promtool check config`, jobs and targets;
#   - deploy/k8s: `kubectl kustomize` renders (also with components/gpu-pools) the expected
#     objects, and they agree with deploy/k8s/cluster.k8s.json; every object of the base and of
#     each component is valid against the Kubernetes 1.27 API schemas (tests/k8s/validate.js,
#     offline; unknown fields are not caught by these schemas);
#   - the Grafana dashboard: valid JSON, data source uid `prometheus` everywhere, only metric
#     names of docs/CONTRACTS.md, valid PromQL (`promtool check rules`), and every expression
#     returns data on synthetic traffic (`promtool test rules`);
#   - the cluster files (local = the CONTRACTS.md example, compose, k8s): same topology;
#   - deploy/tls/make_certs.sh: per-certificate names and addresses (NAME=SAN,...), bad ones refused.
#
# Usage: tests/integration/deploy_config_test.sh
# Needs docker-compose, promtool, kubectl, python3-yaml, node (scripts/setup.sh installs them)
# and tests/k8s/node_modules (scripts/test.sh runs `npm ci` there).
# Exits non-zero if any check fails; the last line is "N passed, N failed".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=/usr/bin/python3

missing=()
for tool in docker-compose promtool kubectl node "$PY"; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]} == 0)) && ! "$PY" -c 'import yaml' 2>/dev/null; then missing+=(python3-yaml); fi
if ((${#missing[@]})); then
  echo "deploy_config_test: missing ${missing[*]}; run scripts/setup.sh" >&2
  exit 1
fi
if [[ ! -d tests/k8s/node_modules/kubernetes-models ]]; then
  echo "deploy_config_test: the schemas are missing; run (cd tests/k8s && npm ci)" >&2
  exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, prints ok or FAIL with its output.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    printf '%s\n' "$out" | sed 's/^/       /'
    failed=$((failed + 1))
  fi
}

# The checks that read files, in Python (standard library and PyYAML only).
cat >"$TMP/checks.py" <<'PYEOF'
import json, os, re, subprocess, sys
import yaml

EXPECTED_PORTS = {"orchestrator": (50050, 9100), "router": (50051, 9101),
                  "pool-a": (50061, 9111), "pool-b": (50062, 9112)}
ELASTIC_PORTS = (50060, 9110)  # k8s pool-elastic: not in the cluster files
MOE = ["router", "pool-a", "pool-b", "orchestrator"]
CLUSTER_FILES = {"local": "deploy/local/cluster.json", "compose": "deploy/cluster.compose.json",
                 "k8s": "deploy/k8s/cluster.k8s.json"}
DASHBOARD = "deploy/grafana/dashboards/moe-expert-load.json"
errors = []


def err(msg):
    errors.append(msg)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def hostport(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


def cluster_addresses(c):
    """{process name: (host, port)} of a cluster file."""
    out = {"router": hostport(c["router"]["address"]),
           "orchestrator": hostport(c["orchestrator"]["address"])}
    for p in c["pools"]:
        out[p["name"]] = hostport(p["address"])
    return out


def flags(args):
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if a.startswith("--") and "=" in a}


# ---------------------------------------------------------------------------------------------
def check_clusters():
    with open("docs/CONTRACTS.md", encoding="utf-8") as f:
        contracts = f.read()
    m = re.search(r"## Cluster file.*?```json\n(.*?)```", contracts, re.S)
    if not m:
        return err("no JSON example under '## Cluster file' in docs/CONTRACTS.md")
    example = json.loads(m.group(1))
    files = {k: load_json(v) for k, v in CLUSTER_FILES.items()}
    if files["local"] != example:
        err("deploy/local/cluster.json differs from the example in docs/CONTRACTS.md")

    def topology(c):
        return [(p["name"], p["hosts"]) for p in c["pools"]]

    ref = topology(files["local"])
    for kind, c in files.items():
        if topology(c) != ref:
            err(f"{CLUSTER_FILES[kind]}: pools/hosts differ from deploy/local/cluster.json")
        addrs = cluster_addresses(c)
        for name, (grpc, _) in EXPECTED_PORTS.items():
            if name not in addrs:
                err(f"{CLUSTER_FILES[kind]}: no address for {name}")
            elif addrs[name][1] != grpc:
                err(f"{CLUSTER_FILES[kind]}: {name} port {addrs[name][1]}, CONTRACTS.md says {grpc}")
        if kind == "local" and any(h != "127.0.0.1" for h, _ in addrs.values()):
            err("deploy/local/cluster.json: every address must be 127.0.0.1")
        if kind == "compose" and any(h != n for n, (h, _) in addrs.items()):
            err("deploy/cluster.compose.json: each host must be its compose service name")


# ---------------------------------------------------------------------------------------------
def check_tls(compose_path, k8s_path):
    """The mTLS overlays: every MoE process gets its own certificate, the CA and the mount."""
    def want_env(where, name, env):
        for var, ext in (("MOE_TLS_CERT", f"{name}.pem"), ("MOE_TLS_KEY", f"{name}.key"),
                         ("MOE_TLS_CA", "ca.pem")):
            if env.get(var) != f"/etc/moe/tls/{ext}":
                err(f"{where}: {var} is {env.get(var)!r}, expected /etc/moe/tls/{ext}")
    compose = yaml.safe_load(open(compose_path))
    for name in ("router", "pool-a", "pool-b", "orchestrator", "viewer"):
        svc = compose["services"][name]
        want_env(f"compose tls {name}", name, svc.get("environment", {}))
        mounts = [str(v) for v in svc.get("volumes", [])]
        if not any("/etc/moe/tls" in m and m.endswith(":ro") for m in mounts):
            err(f"compose tls {name}: no read-only mount at /etc/moe/tls: {mounts}")
    for doc in yaml.safe_load_all(open(k8s_path)):
        if not doc or doc.get("kind") != "Deployment":
            continue
        name = doc["metadata"]["name"]
        spec = doc["spec"]
        if spec.get("replicas", 1) == 0:
            continue
        pod = spec["template"]["spec"]
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        if vols.get("tls", {}).get("secret", {}).get("secretName") != "moe-tls":
            err(f"k8s tls {name}: no volume from Secret moe-tls")
        for c in pod["containers"]:
            want_env(f"k8s tls {name}", name, {e["name"]: e.get("value") for e in c.get("env", [])})
            if not any(m["mountPath"] == "/etc/moe/tls" and m.get("readOnly")
                       for m in c.get("volumeMounts", [])):
                err(f"k8s tls {name}: Secret not mounted read-only at /etc/moe/tls")


def check_compose():
    with open("deploy/docker-compose.yml", encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    want = set(MOE) | {"viewer", "prometheus", "grafana"}
    if set(services) != want:
        err(f"compose services {sorted(services)}, expected {sorted(want)}")
    cluster = cluster_addresses(load_json(CLUSTER_FILES["compose"]))
    for name, svc in services.items():
        for p in svc.get("ports", []):
            if not str(p).startswith("127.0.0.1:"):
                err(f"compose {name}: port {p} is not published on 127.0.0.1 only")
    for name in MOE:
        svc = services.get(name, {})
        if svc.get("image") != "moe-inference:latest":
            err(f"compose {name}: image is not moe-inference:latest")
        cmd = svc.get("command") or []
        f = flags(cmd)
        grpc, metrics = EXPECTED_PORTS[name]
        if f.get("--listen") != f"0.0.0.0:{grpc}":
            err(f"compose {name}: --listen is {f.get('--listen')}, expected 0.0.0.0:{grpc}")
        if f.get("--metrics_listen") != f"0.0.0.0:{metrics}":
            err(f"compose {name}: --metrics_listen is {f.get('--metrics_listen')}")
        if f.get("--cluster") != CLUSTER_FILES["compose"]:
            err(f"compose {name}: --cluster is not {CLUSTER_FILES['compose']}")
        if cluster.get(name) != (name, grpc):
            err(f"compose {name}: cluster file address {cluster.get(name)} != ({name}, {grpc})")
        if name.startswith("pool-") and f.get("--pool") != name:
            err(f"compose {name}: --pool is {f.get('--pool')}")
        # A joining pool listens on 0.0.0.0: it must advertise the name the router dials.
        if "--join" in f and f.get("--advertise") != f"{name}:{grpc}":
            err(f"compose {name}: --join without --advertise={name}:{grpc}")
        test = (svc.get("healthcheck") or {}).get("test") or []
        if "moectl" not in test or "health" not in test or f"--target=127.0.0.1:{grpc}" not in test:
            err(f"compose {name}: healthcheck is not `moectl health --target=127.0.0.1:{grpc}`: {test}")
    deps = services.get("orchestrator", {}).get("depends_on") or {}
    for d in ["router", "pool-a", "pool-b"]:
        if not isinstance(deps, dict) or (deps.get(d) or {}).get("condition") != "service_healthy":
            err(f"compose orchestrator: must depend on {d} with condition service_healthy")
    viewer = flags(services.get("viewer", {}).get("command") or [])
    if viewer.get("--target") != "orchestrator:50050" or viewer.get("--listen") != "0.0.0.0:8080":
        err("compose viewer: expected serve --listen=0.0.0.0:8080 --target=orchestrator:50050")
    env = services.get("grafana", {}).get("environment") or {}
    for k in ["GF_AUTH_ANONYMOUS_ENABLED", "GF_AUTH_ANONYMOUS_ORG_ROLE", "GF_AUTH_DISABLE_LOGIN_FORM",
              "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]:
        if k not in env:
            err(f"compose grafana: {k} not set")
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH", "")
    mounts = services.get("grafana", {}).get("volumes") or []
    if not any(home.startswith(v.split(":")[1].rstrip("/") + "/") and
               os.path.exists(os.path.join("deploy", v.split(":")[0], os.path.basename(home)))
               for v in mounts):
        err(f"compose grafana: home dashboard {home} is not a mounted file of deploy/grafana/")


# ---------------------------------------------------------------------------------------------
def check_prometheus():
    compose_targets = {"orchestrator": ["orchestrator:9100"], "router": ["router:9101"],
                       "expert_pool": ["pool-a:9111", "pool-b:9112"]}
    for path, interval, targets in [
            ("deploy/prometheus/prometheus.yml", "5s", compose_targets),
            ("deploy/prometheus/prometheus.local.yml", "1s",
             {j: ["127.0.0.1:" + t.split(":")[1] for t in ts] for j, ts in compose_targets.items()})]:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        if cfg.get("global", {}).get("scrape_interval") != interval:
            err(f"{path}: scrape_interval is not {interval}")
        got = {}
        for job in cfg.get("scrape_configs", []):
            got[job["job_name"]] = sorted(t for sc in job.get("static_configs", [])
                                          for t in sc.get("targets", []))
        want = {j: sorted(ts) for j, ts in targets.items()}
        if got != want:
            err(f"{path}: jobs/targets {got}, expected {want}")


# ---------------------------------------------------------------------------------------------
def check_k8s(rendered, rendered_gpu):
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    ns = by_kind.get("Namespace", {})
    if len(ns) != 1:
        return err(f"k8s: expected one Namespace, got {sorted(ns)}")
    namespace = next(iter(ns))
    want = set(MOE) | {"viewer"}
    # Elastic pools are reached by pod IP (they tell the router), so they have no Service.
    for kind, names in [("Deployment", want | {"pool-elastic"}), ("Service", want)]:
        if set(by_kind.get(kind, {})) != names:
            err(f"k8s: {kind}s {sorted(by_kind.get(kind, {}))}, expected {sorted(names)}")
    cms = list(by_kind.get("ConfigMap", {}).values())
    if len(cms) != 1 or "cluster.json" not in cms[0].get("data", {}):
        return err("k8s: expected one ConfigMap with cluster.json")
    cm = cms[0]
    if json.loads(cm["data"]["cluster.json"]) != load_json(CLUSTER_FILES["k8s"]):
        err("k8s: ConfigMap cluster.json is not deploy/k8s/cluster.k8s.json")
    cluster = cluster_addresses(load_json(CLUSTER_FILES["k8s"]))
    for name in MOE:
        host, port = cluster.get(name, ("", 0))
        if host not in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                        f"{name}.{namespace}.svc.cluster.local"):
            err(f"k8s cluster file: {name} host {host} is not the DNS name of Service {name}")
        svc = by_kind.get("Service", {}).get(name)
        if svc and port not in [p["port"] for p in svc["spec"]["ports"]]:
            err(f"k8s Service {name} does not expose {port}")
    for name, dep in by_kind.get("Deployment", {}).items():
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        c = spec["containers"][0]
        if c.get("image") != "moe-inference:latest":
            err(f"k8s {name}: image {c.get('image')}")
        if name == "viewer":
            continue
        grpc, metrics = ELASTIC_PORTS if name == "pool-elastic" else EXPECTED_PORTS[name]
        f = flags(c.get("args", []))
        if f.get("--listen") != f"0.0.0.0:{grpc}" or f.get("--metrics_listen") != f"0.0.0.0:{metrics}":
            err(f"k8s {name}: --listen/--metrics_listen are not 0.0.0.0:{grpc}/0.0.0.0:{metrics}")
        for probe in ["readinessProbe", "livenessProbe"]:
            if (c.get(probe) or {}).get("grpc", {}).get("port") != grpc:
                err(f"k8s {name}: {probe} is not a gRPC probe on {grpc}")
        ann = pod["metadata"].get("annotations", {})
        if (ann.get("prometheus.io/scrape"), ann.get("prometheus.io/port"),
                ann.get("prometheus.io/path")) != ("true", str(metrics), "/metrics"):
            err(f"k8s {name}: prometheus.io annotations wrong: {ann}")
        mount = next((m["mountPath"] for m in c.get("volumeMounts", [])), None)
        vol = next((v for v in spec.get("volumes", []) if "configMap" in v), None)
        if not vol or vol["configMap"]["name"] != cm["metadata"]["name"] or \
                f.get("--cluster") != f"{mount}/cluster.json":
            err(f"k8s {name}: --cluster does not point into the generated ConfigMap")
        if name == "pool-elastic":
            router_host, router_port = cluster.get("router", ("", 0))
            if f.get("--join") != f"{router_host}:{router_port}" or \
                    f.get("--advertise") != f"$(POD_IP):{grpc}" or f.get("--pool") != "$(POD_NAME)":
                err(f"k8s {name}: must --join the router's Service as $(POD_NAME) at $(POD_IP):{grpc}")
            pre = json.dumps(c.get("lifecycle", {}).get("preStop", {}))
            if "moectl drain" not in pre:
                err(f"k8s {name}: no preStop drain")
        elif name.startswith("pool-") and f.get("--pool") != name:
            err(f"k8s {name}: --pool is {f.get('--pool')}")
    with open(rendered_gpu, encoding="utf-8") as f:
        gpu = {d["metadata"]["name"]: d for d in yaml.safe_load_all(f) if d and d["kind"] == "Deployment"}
    for name in ["pool-a", "pool-b"]:
        c = gpu[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if "--device=$(MOE_DEVICE)" not in c.get("args", []) or env.get("MOE_DEVICE") != "cuda:0" or \
                str(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")) != "1":
            err(f"k8s gpu-pools: {name} does not get --device=cuda:0 and one nvidia.com/gpu")
    for name in ["router", "orchestrator", "viewer"]:
        if "nvidia.com/gpu" in json.dumps(gpu[name]):
            err(f"k8s gpu-pools: {name} must not request a GPU")


# ---------------------------------------------------------------------------------------------
def dashboard_panels(items):
    for p in items or []:
        yield p
        yield from dashboard_panels(p.get("panels"))


def check_dashboard(tmp):
    dash = load_json(DASHBOARD)
    with open("deploy/grafana/provisioning/datasources/prometheus.yml", encoding="utf-8") as f:
        uids = [d.get("uid") for d in yaml.safe_load(f).get("datasources", [])]
    if uids != ["prometheus"]:
        err(f"grafana datasource uids {uids}, expected ['prometheus']")
    with open("docs/CONTRACTS.md", encoding="utf-8") as f:
        contract_names = set(re.findall(r"\bmoe_[a-z0-9_]+", f.read()))
    exprs = []
    for p in dashboard_panels(dash.get("panels")):
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        if (p.get("datasource") or {}).get("uid") != "prometheus":
            err(f"dashboard panel '{title}': datasource uid is not prometheus")
        if not p.get("targets"):
            err(f"dashboard panel '{title}': no query")
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") != "prometheus":
                err(f"dashboard panel '{title}' target {t.get('refId')}: datasource uid is not prometheus")
            expr = t.get("expr", "")
            if "$" in expr or "\n" in expr:
                err(f"dashboard panel '{title}': expression has a variable or a newline: {expr}")
            for name in re.findall(r"\bmoe_[a-z0-9_]+", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in contract_names and base not in contract_names:
                    err(f"dashboard panel '{title}': metric {name} is not in docs/CONTRACTS.md")
            if expr not in [e for _, e in exprs]:
                exprs.append((title, expr))
    out = subprocess.run([sys.executable, "tests/integration/dashboard_queries.py", DASHBOARD],
                         capture_output=True, text=True)
    listed = out.stdout.splitlines()
    if out.returncode != 0 or listed != [e for _, e in exprs]:
        err(f"dashboard_queries.py does not list the dashboard's expressions: {out.stderr}")

    # Every expression, as an alert rule that fires when it returns at least one sample.
    rules = [{"alert": f"Q{i}", "expr": f"count({e}) > 0"} for i, (_, e) in enumerate(exprs)]
    with open(os.path.join(tmp, "rules.yml"), "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    # Synthetic traffic: the series a healthy cluster has once requests succeeded. Deliberately
    # absent: capacity drops, dropped events and non-OK statuses, which may never happen.
    series = []

    def add(s, values):
        series.append({"series": s, "values": values})

    def hist(name, labels=""):
        sep = "," if labels else ""
        for le, k in [("0.001", 1), ("0.01", 3), ("0.1", 6), ("1", 8), ("+Inf", 9)]:
            add(f'{name}_bucket{{{labels}{sep}le="{le}"}}', f"0+{k}x60")
        add(f"{name}_sum{{{labels}}}", "0+0.5x60")
        add(f"{name}_count{{{labels}}}", "0+9x60")

    for layer in range(2):
        for expert in range(8):
            pool = "pool-a" if expert < 4 else "pool-b"
            add(f'moe_expert_tokens_routed_total{{layer="{layer}",expert="{expert}"}}', f"0+{expert + 1}x60")
            add(f'moe_expert_tokens_computed_total{{layer="{layer}",expert="{expert}",pool="{pool}"}}',
                f"0+{expert + 1}x60")
        add(f'moe_expert_tokens_computed_total{{layer="{layer}",expert="s0",pool="pool-a"}}', "0+10x60")
    for pool in ["pool-a", "pool-b"]:
        add(f'moe_pool_healthy{{pool="{pool}"}}', "1x60")
        hist("moe_forward_duration_seconds", f'pool="{pool}"')
        hist("moe_forward_call_duration_seconds", f'pool="{pool}"')
    hist("moe_route_duration_seconds")
    hist("moe_route_call_duration_seconds")
    hist("moe_time_to_first_token_seconds")
    hist("moe_inter_token_latency_seconds")
    hist("moe_decode_batch_size")
    add('moe_generate_requests_total{code="OK"}', "0+1x60")
    add("moe_tokens_generated_total", "0+20x60")
    add("moe_inflight_requests", "1x60")
    add("moe_event_subscribers", "0x60")
    for service in ["router", "expert_pool", "orchestrator"]:
        add(f'moe_build_info{{service="{service}"}}', "1x60")
    # Elastic placement: created at start, whether or not anything changes.
    add("moe_placement_epoch", "1x60")
    for layer in range(2):
        add(f'moe_layer_balancedness{{layer="{layer}"}}', "1x60")
        for pool in ["pool-a", "pool-b"]:
            add(f'moe_experts_hosted{{pool="{pool}",layer="{layer}"}}', "4x60")
    for outcome in ["changed", "unchanged", "failed"]:
        add(f'moe_rebalances_total{{outcome="{outcome}"}}', "0x60")
    for kind in ["load", "drop"]:
        add(f'moe_replica_changes_total{{kind="{kind}"}}', "0x60")
    for pool in ["pool-a", "pool-b"]:
        add(f'moe_experts_loaded_total{{pool="{pool}"}}', "0x60")
        add(f'moe_experts_dropped_total{{pool="{pool}"}}', "0x60")
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "5s",
            "tests": [{"interval": "5s", "input_series": series,
                       "alert_rule_test": [{"eval_time": "4m", "alertname": r["alert"], "exp_alerts": [{}]}
                                           for r in rules]}]}
    with open(os.path.join(tmp, "test.yml"), "w") as f:
        yaml.safe_dump(test, f)
    for cmd in (["promtool", "check", "rules", "rules.yml"], ["promtool", "test", "rules", "test.yml"]):
        out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if out.returncode != 0:
            text = out.stdout + out.stderr
            for i, (title, e) in reversed(list(enumerate(exprs))):  # Q10 before Q1
                text = text.replace(f"Q{i}", f"'{title}': {e} ")
            err(f"{' '.join(cmd[:3])}: {text.strip()}")
            break
    print(f"{len(exprs)} distinct expressions")


def main():
    what = sys.argv[1]
    if what == "clusters":
        check_clusters()
    elif what == "compose":
        check_compose()
    elif what == "prometheus":
        check_prometheus()
    elif what == "k8s":
        check_k8s(sys.argv[2], sys.argv[3])
    elif what == "dashboard":
        check_dashboard(sys.argv[2])
    elif what == "tls":
        check_tls(sys.argv[2], sys.argv[3])
    for e in errors:
        print(e)
    return 1 if errors else 0


sys.exit(main())
PYEOF

# kubectl kustomize with one component switched on (gpu-pools -> $TMP/k8s-gpu.yaml, tls ->
# $TMP/k8s-tls.yaml), from an overlay beside the tree (its paths must be relative).
render_component() {
  local overlay=$TMP/$1-overlay rel
  mkdir -p "$overlay"
  rel=$(realpath --relative-to="$overlay" deploy/k8s)
  printf 'resources:\n  - %s\ncomponents:\n  - %s/components/%s\n' "$rel" "$rel" "$1" \
    >"$overlay/kustomization.yaml"
  kubectl kustomize "$overlay" >"$TMP/k8s-${1%-pools}.yaml"
}

check "cluster files: JSON, same topology, local = CONTRACTS.md example" "$PY" "$TMP/checks.py" clusters
check "docker-compose config -q" docker-compose -f deploy/docker-compose.yml config -q
check "compose: services, ports, health checks, start order" "$PY" "$TMP/checks.py" compose
check "promtool check config prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
check "promtool check config prometheus.local.yml" promtool check config deploy/prometheus/prometheus.local.yml
check "prometheus: jobs and targets" "$PY" "$TMP/checks.py" prometheus
check "kubectl kustomize deploy/k8s" bash -c "kubectl kustomize deploy/k8s >'$TMP/k8s.yaml'"
check "kubectl kustomize with components/gpu-pools" render_component gpu-pools
check "k8s: objects, probes, annotations, cluster ConfigMap, GPU pools" \
  "$PY" "$TMP/checks.py" k8s "$TMP/k8s.yaml" "$TMP/k8s-gpu.yaml"
check "docker-compose config with docker-compose.tls.yml" bash -c \
  "docker-compose -f deploy/docker-compose.yml -f deploy/docker-compose.tls.yml config >'$TMP/compose-tls.yaml'"
check "kubectl kustomize with components/tls" render_component tls
check "mTLS: certificate, CA and mount of every process (compose, k8s)" \
  "$PY" "$TMP/checks.py" tls "$TMP/compose-tls.yaml" "$TMP/k8s-tls.yaml"
# Every rendered object against the Kubernetes API's schemas (types, required fields, enums).
validate_schemas() {
  local f
  for f in "$@"; do
    "$PY" -c 'import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))' \
      <"$TMP/$f.yaml" | node tests/k8s/validate.js "$f" | grep -v '^ok' || return 1
  done
}
check "k8s: every object valid against the Kubernetes API schemas (base, gpu-pools, tls)" \
  validate_schemas k8s k8s-gpu k8s-tls
check "dashboard: uids, metric names, PromQL valid and returning data" \
  "$PY" "$TMP/checks.py" dashboard "$TMP"

# deploy/tls/make_certs.sh: NAME=SAN,... adds names and addresses to that certificate only;
# malformed ones are refused before anything is written.
check_make_certs() {
  local d=$TMP/certs san bad out
  deploy/tls/make_certs.sh "$d" router=IP:10.0.0.10 pool-a=IP:10.0.0.11,DNS:pool-a.example.net \
    pool-b --san=DNS:moe.example >/dev/null
  for want in "router:DNS:router, DNS:localhost, IP Address:127.0.0.1, DNS:moe.example, IP Address:10.0.0.10" \
    "pool-a:DNS:pool-a, DNS:localhost, IP Address:127.0.0.1, DNS:moe.example, IP Address:10.0.0.11, DNS:pool-a.example.net" \
    "pool-b:DNS:pool-b, DNS:localhost, IP Address:127.0.0.1, DNS:moe.example"; do
    san=$(openssl x509 -in "$d/${want%%:*}.pem" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//')
    [[ "$san" == "${want#*:}" ]] || { echo "${want%%:*}.pem names '$san', expected '${want#*:}'"; return 1; }
  done
  openssl verify -CAfile "$d/ca.pem" "$d/pool-a.pem" >/dev/null
  for bad in pool-a= pool-a=IP:10.0.0.256 pool-a=IP:10.0.0 pool-a=10.0.0.1 pool-a=DNS:a_b \
    pool-a=IP:10.0.0.1,,DNS:x pool-a=IP:fd00::zz --san=IP:1.2.3; do
    if out=$(deploy/tls/make_certs.sh "$TMP/certs-bad" "$bad" 2>&1); then
      echo "make_certs.sh accepted '$bad'"; return 1
    fi
    [[ "$out" == "make_certs: "*"'"* || "$out" == *"after '='"* ]] || { echo "'$bad': unclear error: $out"; return 1; }
  done
  [[ ! -e "$TMP/certs-bad" ]] || { echo "a refused call wrote $TMP/certs-bad"; return 1; }
}
check "make_certs.sh: per-certificate names and addresses, malformed ones refused" check_make_certs

echo "deploy_config_test: $passed passed, $failed failed"
((failed == 0))
