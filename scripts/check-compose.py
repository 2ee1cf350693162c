#!/usr/bin/env python3
"""Checks compose.yaml and deploy/Caddyfile without running containers (issue 18).

1. compose.yaml is a valid Compose file: `docker compose config` when Docker Compose is
   installed, else the Compose Specification's JSON schema (vendored by check-jsonschema).
2. The Docobo service's environment is a configuration Docobo accepts: `docobo check-config`
   runs with exactly those variables (`${VAR:?…}` filled with placeholders), so a misspelt
   setting fails here, not on the owner's machine.
3. The Caddyfile is one Caddy accepts (`caddy validate`), when caddy is installed.

Usage: scripts/check-compose.py [path/to/docobo]   (default: target/debug/docobo)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEHOLDERS = {"DISCORD_TOKEN": "placeholder-token", "DOCOBO_DOMAIN": "docobo.example.org"}


def run(cmd, **kw):
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kw)


def interpolate(value):
    """Compose's ${VAR}, ${VAR:?msg}, ${VAR:-default} with the placeholders."""

    def one(m):
        name, rest = m.group(1), m.group(2) or ""
        if name in PLACEHOLDERS:
            return PLACEHOLDERS[name]
        if rest.startswith(":-"):
            return rest[2:]
        sys.exit(f"compose.yaml uses ${{{name}}}, which this check has no placeholder for")

    return re.sub(r"\$\{([A-Z0-9_]+)((?::[?-][^}]*)?)\}", one, str(value))


def main():
    docobo = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/docobo")
    compose = os.path.join(ROOT, "compose.yaml")
    env = dict(os.environ, **PLACEHOLDERS)

    has_compose = shutil.which("docker") is not None and (
        run(["docker", "compose", "version"], capture_output=True, env=env).returncode == 0
    )
    if has_compose:
        subprocess.run(["docker", "compose", "-f", compose, "config", "-q"], check=True, env=env)
        print("compose.yaml: docker compose config ok")
    else:
        checker = shutil.which("check-jsonschema")
        if checker is None:
            sys.exit("neither Docker Compose nor check-jsonschema is installed (pip install check-jsonschema)")
        subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", compose], check=True)
        print("compose.yaml: valid against the Compose Specification schema")

    with open(compose, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    service_env = spec["services"]["docobo"]["environment"]
    variables = {k: interpolate(v) for k, v in service_env.items()}
    with tempfile.TemporaryDirectory() as empty:
        clean = {"PATH": os.environ.get("PATH", "")}
        clean.update(variables)
        out = run([docobo, "check-config"], cwd=empty, env=clean, capture_output=True, text=True)
        print(out.stdout + out.stderr, end="")
        if out.returncode != 0:
            sys.exit("compose.yaml: Docobo refuses the docobo service's environment")
    print(f"compose.yaml: docobo check-config accepts its {len(variables)} setting(s)")

    caddy = shutil.which("caddy")
    caddyfile = os.path.join(ROOT, "deploy/Caddyfile")
    if caddy is None:
        print("caddy is not installed: Caddyfile not checked")
    else:
        subprocess.run(
            [caddy, "validate", "--adapter", "caddyfile", "--config", caddyfile],
            check=True,
            env=env,
        )
        print("deploy/Caddyfile: caddy validate ok")


if __name__ == "__main__":
    main()
