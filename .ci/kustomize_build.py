"""`kustomize build DIR` for the subset deploy/kubernetes uses, in Python (no kustomize binary
is installable from Debian or PyPI): resources (files or kustomization folders), namespace,
labels (metadata only, as with includeSelectors: false) and images (newName, newTag or digest).

Usage: python .ci/kustomize_build.py deploy/kubernetes > built.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass", "IngressClass"}
SUPPORTED = {"apiVersion", "kind", "namespace", "labels", "images", "resources"}


def build(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise SystemExit(f"{folder}/kustomization.yaml: this builder does not support {sorted(unsupported)}")
    documents = [doc for resource in kustomization.get("resources", []) for doc in _load(folder / resource)]
    for doc in documents:
        _apply(doc, kustomization)
    return documents


def _load(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        yield from build(path)
        return
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc:
            yield doc


def _apply(doc: dict[str, Any], kustomization: dict[str, Any]) -> None:
    metadata = doc.setdefault("metadata", {})
    namespace = kustomization.get("namespace")
    if namespace and doc.get("kind") not in CLUSTER_SCOPED:
        metadata["namespace"] = namespace
    for label_set in kustomization.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise SystemExit("labels: only includeSelectors/includeTemplates false is supported")
        metadata.setdefault("labels", {}).update(label_set.get("pairs", {}))
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for container in _containers(doc):
        image = images.get(container.get("image"))
        if image is not None:
            name = image.get("newName", image["name"])
            container["image"] = f"{name}@{image['digest']}" if "digest" in image else f"{name}:{image['newTag']}"


def _containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = (doc.get("spec") or {}).get("template", {}).get("spec", {})
    if doc.get("kind") == "CronJob":
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


if __name__ == "__main__":
    yaml.safe_dump_all(build(Path(sys.argv[1])), sys.stdout, sort_keys=False)
