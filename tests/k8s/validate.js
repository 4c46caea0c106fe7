// Validates Kubernetes objects against the Kubernetes API's OpenAPI schemas (those of the
// kubernetes-models package, Kubernetes 1.27), offline: no cluster, no network.
//
// Usage: kubectl kustomize deploy/k8s | python3 -c 'yaml to a JSON list' | node validate.js NAME
// Reads a JSON array of objects on stdin; prints one line per object; exits 1 if any object is
// invalid, of a kind the schemas do not know, or if the list is empty.
"use strict";

const fs = require("fs");
const path = require("path");

const label = process.argv[2] || "stdin";
const objects = JSON.parse(fs.readFileSync(0, "utf8"));
if (!Array.isArray(objects) || objects.length === 0) {
  console.error(`validate ${label}: expected a non-empty JSON array of objects`);
  process.exit(1);
}

// "apps/v1" + Deployment -> kubernetes-models/apps/v1/Deployment; "v1" + Service -> v1/Service.
function modelOf(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
  const file = path.join("kubernetes-models", obj.apiVersion, obj.kind);
  try {
    return require(file)[obj.kind];
  } catch (e) {
    if (e.code === "MODULE_NOT_FOUND") return null;
    throw e;
  }
}

let bad = 0;
for (const obj of objects) {
  const name = `${obj.kind}/${(obj.metadata && obj.metadata.name) || "?"}`;
  const Model = modelOf(obj);
  if (!Model) {
    console.log(`FAIL ${label}: ${name}: no schema for apiVersion ${obj.apiVersion}, kind ${obj.kind}`);
    bad++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${label}: ${name}`);
  } catch (e) {
    const details = (e.errors || []).map((x) => `${x.instancePath} ${x.message}`).join("; ");
    console.log(`FAIL ${label}: ${name}: ${details || e.message}`);
    bad++;
  }
}
console.log(`validate ${label}: ${objects.length - bad} passed, ${bad} failed`);
process.exit(bad ? 1 : 0);
