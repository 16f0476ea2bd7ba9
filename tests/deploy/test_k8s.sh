#!/bin/sh
# test_k8s.sh — deploy/kubernetes renders with `kubectl kustomize` and every
# object validates offline against the Kubernetes API schemas, with the npm
# package kubernetes-models (its classes carry ajv validators generated from
# the Kubernetes OpenAPI spec). The custom-metric HPA variant is validated
# too, and a manifest with a wrong type must fail (the check can fail).
# Then the properties the docs promise are read back from the rendering.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
ok() { echo "ok   $*"; }

# The validator lives in tests/deploy/node_modules (git-ignored), installed
# from the npm registry on first use, versions pinned.
if [ ! -d "$HERE/node_modules/kubernetes-models" ] || [ ! -d "$HERE/node_modules/js-yaml" ]; then
	(cd "$HERE" && npm install --no-save --no-audit --no-fund --loglevel=error \
		kubernetes-models@5.1.0 js-yaml@4.1.0 >"$TMP/npm.log" 2>&1) ||
		{ cat "$TMP/npm.log"; fail "npm install kubernetes-models"; }
fi
V="node $HERE/k8s_validate.mjs"

kubectl kustomize "$ROOT/deploy/kubernetes" >"$TMP/all.yaml" || fail "kubectl kustomize"
$V <"$TMP/all.yaml" || fail "schema validation"
$V <"$ROOT/deploy/kubernetes/hpa-queue-depth.yaml" || fail "hpa-queue-depth.yaml"
sed 's/^  replicas: 3$/  replicas: three/' "$TMP/all.yaml" >"$TMP/bad.yaml"
if $V <"$TMP/bad.yaml" >"$TMP/bad.out" 2>&1; then
	fail "a Deployment with replicas: three validated"
fi
grep -q "replicas must be integer" "$TMP/bad.out" || fail "unexpected: $(cat "$TMP/bad.out")"
n=$(grep -c '^kind:' "$TMP/all.yaml")
ok "kubectl kustomize renders $n objects; all valid against the Kubernetes schemas (kubernetes-models)"

# What docs/deploy.md promises, read from the rendered Deployment.
HERE=$HERE node --input-type=module - "$TMP/all.yaml" <<'JS' || fail "deployment properties"
import fs from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.env.HERE + "/");
const yaml = require("js-yaml");
const docs = yaml.loadAll(fs.readFileSync(process.argv[2], "utf8"));
const by = (k) => docs.find((d) => d.kind === k);
const dep = by("Deployment"), pod = dep.spec.template.spec, c = pod.containers[0];
const env = Object.fromEntries(c.env.filter((e) => "value" in e).map((e) => [e.name, +e.value || e.value]));
const check = (ok, what) => { if (!ok) { console.log("FAIL: " + what); process.exit(1); } };
check(c.startupProbe.httpGet.path === "/readyz", "startupProbe on /readyz");
check(c.readinessProbe.httpGet.path === "/readyz", "readinessProbe on /readyz");
check(c.livenessProbe.httpGet.path === "/livez", "livenessProbe on /livez");
const pre = +c.lifecycle.preStop.exec.command[1];
const need = pre + (env.MLLMD_DRAIN_DELAY_MS + env.MLLMD_SHUTDOWN_TIMEOUT_MS + 2000) / 1000;
check(pod.terminationGracePeriodSeconds > need,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop + drain = ${need}`);
check(pod.securityContext.runAsNonRoot && pod.securityContext.runAsUser > 0, "non-root");
check(c.securityContext.readOnlyRootFilesystem === true, "read-only root filesystem");
check(c.securityContext.allowPrivilegeEscalation === false, "no privilege escalation");
check(c.resources.requests.cpu && c.resources.limits.memory, "requests and limits");
const m = c.volumeMounts.find((v) => v.mountPath === "/models");
check(m && m.readOnly, "models mounted read-only from a volume");
check(env.MLLMD_MODELS.startsWith("mobilellm-demo=/models/"), "model id as in the README");
check(by("PodDisruptionBudget") && by("HorizontalPodAutoscaler") && by("Service"), "PDB, HPA, Service");
const ing = by("Ingress");
check(ing.metadata.annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] === "$http_x_session_id",
      "ingress hashes X-Session-Id");
console.log(`deployment: grace ${pod.terminationGracePeriodSeconds} s > preStop ${pre} s + drain/stop ${need - pre} s`);
JS
ok "probes, preStop/grace period, non-root read-only pod, models volume, PDB, HPA, ingress hash"
