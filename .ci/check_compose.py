"""Parse deploy/compose.yaml and check what `docker compose config` would: every service has an
image or a build, and every referenced service, secret and volume is defined; no floating image tags."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def problems(compose: dict) -> list[str]:  # type: ignore[type-arg]
    services = compose.get("services") or {}
    secrets, volumes = set(compose.get("secrets") or {}), set(compose.get("volumes") or {})
    found = [] if services else ["no services"]
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            found.append(f"{name}: neither image nor build")
        image = str(service.get("image", ""))
        if image and (":" not in image or image.endswith(":latest")):
            found.append(f"{name}: image {image!r} is not pinned to a tag")
        depends = service.get("depends_on") or {}
        found += [f"{name}: depends on unknown service {dep!r}" for dep in depends if dep not in services]
        found += [f"{name}: unknown secret {s!r}" for s in service.get("secrets") or () if s not in secrets]
        for mount in service.get("volumes") or ():
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")) and source not in volumes:
                found.append(f"{name}: unknown volume {source!r}")
    return found


if __name__ == "__main__":
    path = Path(sys.argv[1])
    found = problems(yaml.safe_load(path.read_text(encoding="utf-8")))
    for problem in found:
        print(f"{path}: {problem}")
    sys.exit(1 if found else 0)
