// k8s_validate.mjs — validates Kubernetes manifests (a YAML stream on stdin,
// e.g. `kubectl kustomize` output) offline against the Kubernetes OpenAPI
// schemas, with the npm package kubernetes-models (generated from the
// Kubernetes API's OpenAPI spec, validated by ajv). Prints one line per
// object; exits 1 if any object fails or has a kind it does not know.
import fs from "node:fs";
import yaml from "js-yaml";

const docs = yaml.loadAll(fs.readFileSync(0, "utf8")).filter((d) => d);
let bad = 0;
for (const d of docs) {
  const name = `${d.kind}/${d.metadata && d.metadata.name}`;
  const [group, version] = String(d.apiVersion).includes("/")
    ? d.apiVersion.split("/")
    : ["", d.apiVersion];
  const dir = group ? `${group}/${version}` : version;
  let Model;
  try {
    Model = (await import(`kubernetes-models/${dir}/${d.kind}`))[d.kind];
  } catch (e) {
    console.log(`FAIL ${name}: no schema for ${d.apiVersion} ${d.kind}`);
    bad++;
    continue;
  }
  try {
    new Model(d).validate();
    console.log(`valid ${d.apiVersion} ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    bad++;
  }
}
if (docs.length === 0) {
  console.log("FAIL: no objects on stdin");
  bad++;
}
process.exit(bad ? 1 : 0);
