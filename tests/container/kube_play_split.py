#!/usr/bin/python3
"""Prepares the rendered Kubernetes manifests (kubectl kustomize deploy/k8s) for podman kube play.

podman kube play (4.3) runs Pods, Deployments and ConfigMaps, but differs from a kubelet in two
ways that matter here, and this stands in for both, changing nothing else:
  - no Services and no cluster DNS, while the manifests reach each other by Service names
    (router.moe.svc.cluster.local ...): each Deployment gets a fixed IP on the test's network, and
    every pod gets hostAliases mapping each Service's DNS names to its Deployment's IP;
  - no $(VAR) expansion in a container's command and args: references to the container's own
    literal env values are expanded here, as the kubelet does;
  - init containers get the Deployment's restartPolicy (Always): one that finished is started
    again while kube play removes it, and kube play fails ("cannot remove container ... as it is
    running"). They are left out here; the test does what the orchestrator's does (wait until
    the router and the pools answer SERVING) before playing it.

Writes one file per Deployment that has replicas (its ConfigMaps included), in start order
(router, pools, orchestrator, viewer), and prints "NAME IP FILE" per line.

Usage: kube_play_split.py RENDERED.yaml OUTDIR SUBNET_PREFIX   (e.g. 10.89.77)
"""
import json
import os
import re
import sys

import yaml

ORDER = ["router", "pool-a", "pool-b", "pool-elastic", "orchestrator", "viewer"]


def expand_env_references(pod_spec):
    """$(NAME) in command/args -> the value of the container's env NAME, where it is a literal."""
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        for key in ("command", "args"):
            if key in c:
                c[key] = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                 lambda m: env.get(m.group(1), m.group(0)), a) for a in c[key]]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rendered, outdir, prefix = sys.argv[1:]
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    unknown = set(deployments) - set(ORDER)
    if unknown:
        sys.exit(f"kube_play_split: no start order for {sorted(unknown)}")

    chosen = [n for n in ORDER if n in deployments and deployments[n]["spec"].get("replicas", 1) > 0]
    ips = {name: f"{prefix}.{10 + i}" for i, name in enumerate(chosen)}
    # A Service selects pods by labels; map its names to the Deployment whose pods it selects.
    aliases = {}
    for sname, svc in services.items():
        selector = svc["spec"].get("selector", {})
        for dname in chosen:
            labels = deployments[dname]["spec"]["template"]["metadata"].get("labels", {})
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                ns = svc["metadata"].get("namespace", "default")
                aliases.setdefault(ips[dname], []).extend(
                    [sname, f"{sname}.{ns}", f"{sname}.{ns}.svc", f"{sname}.{ns}.svc.cluster.local"])
    host_aliases = [{"ip": ip, "hostnames": names} for ip, names in sorted(aliases.items())]

    os.makedirs(outdir, exist_ok=True)
    for i, name in enumerate(chosen):
        dep = json.loads(json.dumps(deployments[name]))
        dep["spec"]["template"]["spec"]["hostAliases"] = host_aliases
        expand_env_references(dep["spec"]["template"]["spec"])
        dep["spec"]["template"]["spec"].pop("initContainers", None)
        path = os.path.join(outdir, f"{i:02d}-{name}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump_all(configmaps + [dep], f, sort_keys=False)
        print(name, ips[name], path)


if __name__ == "__main__":
    main()
