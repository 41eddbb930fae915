"""KubeRay manifests, checked without a cluster.

- Core objects and every pod template against Kubernetes' own OpenAPI schemas
  (kubernetes-validate, strict: unknown fields are errors).
- RayService/RayJob fields against the ray.io/v1 API (field names, required fields,
  enums and value types as KubeRay's Go types declare them: ``RAY_IO_V1`` below).
  KubeRay's CRD files themselves are not vendored: see docs/deploy.md.
- What they carry: the Serve config, the job commands (parsed by our CLIs), the
  environment (loaded as our settings), volumes, images and the Ray version.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "infra/kuberay"
K8S_VERSION = "1.33.0"  # oldest Kubernetes the manifests are checked against


class _V1(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RAY_IO_V1:  # noqa: N801 - a namespace of the ray.io/v1 spec types we use
    class AutoscalerOptions(_V1):
        upscalingMode: Literal["Default", "Aggressive", "Conservative"] | None = None
        idleTimeoutSeconds: StrictInt | None = None
        resources: dict[str, Any] | None = None
        image: StrictStr | None = None
        imagePullPolicy: StrictStr | None = None
        env: list[dict[str, Any]] | None = None
        envFrom: list[dict[str, Any]] | None = None
        volumeMounts: list[dict[str, Any]] | None = None
        securityContext: dict[str, Any] | None = None
        version: Literal["v1", "v2"] | None = None

    class HeadGroupSpec(_V1):
        rayStartParams: dict[StrictStr, StrictStr] = {}
        template: dict[str, Any]
        serviceType: StrictStr | None = None
        headService: dict[str, Any] | None = None
        enableIngress: StrictBool | None = None

    class WorkerGroupSpec(_V1):
        groupName: StrictStr
        replicas: StrictInt | None = None
        minReplicas: StrictInt | None = None
        maxReplicas: StrictInt | None = None
        numOfHosts: StrictInt | None = None
        rayStartParams: dict[StrictStr, StrictStr] = {}
        template: dict[str, Any]
        scaleStrategy: dict[str, Any] | None = None
        suspend: StrictBool | None = None

    class RayClusterSpec(_V1):
        headGroupSpec: "RAY_IO_V1.HeadGroupSpec"
        workerGroupSpecs: list["RAY_IO_V1.WorkerGroupSpec"] = []
        rayVersion: StrictStr | None = None
        enableInTreeAutoscaling: StrictBool | None = None
        autoscalerOptions: "RAY_IO_V1.AutoscalerOptions | None" = None
        headServiceAnnotations: dict[StrictStr, StrictStr] | None = None
        suspend: StrictBool | None = None
        managedBy: StrictStr | None = None
        gcsFaultToleranceOptions: dict[str, Any] | None = None

    class UpgradeStrategy(_V1):
        type: Literal["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]

    class RayServiceSpec(_V1):
        rayClusterConfig: "RAY_IO_V1.RayClusterSpec"
        serveConfigV2: StrictStr | None = None
        upgradeStrategy: "RAY_IO_V1.UpgradeStrategy | None" = None
        serveService: dict[str, Any] | None = None
        excludeHeadPodFromServeSvc: StrictBool | None = None
        deploymentUnhealthySecondThreshold: StrictInt | None = None
        serviceUnhealthySecondThreshold: StrictInt | None = None

    class RayJobSpec(_V1):
        entrypoint: StrictStr | None = None
        runtimeEnvYAML: StrictStr | None = None
        submissionMode: Literal["K8sJobMode", "HTTPMode", "InteractiveMode",
                                "SidecarMode"] | None = None
        backoffLimit: StrictInt | None = None
        activeDeadlineSeconds: StrictInt | None = None
        shutdownAfterJobFinishes: StrictBool | None = None
        ttlSecondsAfterFinished: StrictInt | None = None
        rayClusterSpec: "RAY_IO_V1.RayClusterSpec | None" = None
        clusterSelector: dict[StrictStr, StrictStr] | None = None
        submitterPodTemplate: dict[str, Any] | None = None
        jobId: StrictStr | None = None
        metadata: dict[StrictStr, StrictStr] | None = None
        entrypointNumCpus: float | None = None
        entrypointNumGpus: float | None = None
        entrypointResources: StrictStr | None = None
        suspend: StrictBool | None = None
        managedBy: StrictStr | None = None


for _model in (RAY_IO_V1.RayClusterSpec, RAY_IO_V1.RayServiceSpec, RAY_IO_V1.RayJobSpec):
    _model.model_rebuild(_types_namespace={"RAY_IO_V1": RAY_IO_V1})

SPECS = {"RayService": RAY_IO_V1.RayServiceSpec, "RayJob": RAY_IO_V1.RayJobSpec}


def _objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.name}:{d['kind']}/{d['metadata']['name']}", d)
            for p in sorted(KUBERAY.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]


OBJECTS = _objects()
RAY_OBJECTS = [(n, d) for n, d in OBJECTS if d["kind"] in SPECS]
SHARED = {(d["kind"], d["metadata"]["name"]): d for _, d in OBJECTS if d["kind"] not in SPECS}


def _cluster(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["rayClusterConfig" if obj["kind"] == "RayService" else "rayClusterSpec"]


def _groups(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = _cluster(obj)
    return [("head", cluster["headGroupSpec"])] + [
        (g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]


def _container(group: dict[str, Any]) -> dict[str, Any]:
    [container] = group["template"]["spec"]["containers"]
    return container


def test_the_manifests_hold_a_service_three_jobs_and_their_shared_objects():
    kinds = sorted(n.split(":")[1] for n, _ in OBJECTS)
    assert kinds == ["ConfigMap/llama-rag-config", "PersistentVolumeClaim/llama-rag-data",
                     "RayJob/llama-rag-classify", "RayJob/llama-rag-finetune",
                     "RayJob/llama-rag-index",
                     "RayService/llama-rag", "Secret/llama-rag-secrets"]


@pytest.mark.parametrize("name, obj", [o for o in OBJECTS if o[1]["kind"] not in SPECS],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_core_objects_match_kubernetes_schemas(name, obj):
    import kubernetes_validate

    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name, obj", RAY_OBJECTS, ids=lambda v: v if isinstance(v, str) else "")
def test_ray_objects_match_the_ray_io_v1_api_and_their_pods_kubernetes(name, obj):
    import kubernetes_validate

    assert obj["apiVersion"] == "ray.io/v1"
    SPECS[obj["kind"]].model_validate(obj["spec"])
    for group, spec in _groups(obj):
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                        "metadata": {"name": f"{obj['metadata']['name']}-{group}"},
                        "template": spec["template"]}
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def test_the_api_check_catches_a_wrong_field_and_a_number_for_a_string():
    from pydantic import ValidationError

    [(_, service)] = [o for o in RAY_OBJECTS if o[1]["kind"] == "RayService"]
    spec = yaml.safe_load(yaml.safe_dump(service["spec"]))
    spec["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    with pytest.raises(ValidationError, match="rayStartParams"):
        RAY_IO_V1.RayServiceSpec.model_validate(spec)
    spec = yaml.safe_load(yaml.safe_dump(service["spec"]))
    spec["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 4
    with pytest.raises(ValidationError, match="maxReplica"):
        RAY_IO_V1.RayServiceSpec.model_validate(spec)


def test_the_pod_check_catches_a_misspelt_field():
    import jsonschema
    import kubernetes_validate

    [(_, service)] = [o for o in RAY_OBJECTS if o[1]["kind"] == "RayService"]
    template = yaml.safe_load(yaml.safe_dump(_groups(service)[1][1]["template"]))
    template["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(jsonschema.ValidationError, match="'volumeMount' was unexpected"):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                      "metadata": {"name": "x"}, "template": template},
                                     K8S_VERSION, strict=True)


def test_rayservice_serves_the_gpu_pool_config_with_autoscaling_gpu_workers():
    from llama_rag.config import load_settings

    [(_, service)] = [o for o in RAY_OBJECTS if o[1]["kind"] == "RayService"]
    pool = yaml.safe_load((ROOT / "infra/serve/gpu-pool.yaml").read_text())
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == pool
    settings = load_settings(None, pool["applications"][0]["args"]["overrides"])
    cluster = _cluster(service)
    assert cluster["enableInTreeAutoscaling"] is True
    groups = dict(_groups(service))
    gpu = groups["gpu"]
    limits = _container(gpu)["resources"]["limits"]
    gpus_per_pod = int(limits["nvidia.com/gpu"])
    assert _container(gpu)["resources"]["requests"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
    # the pool can grow to Serve's largest LLM deployment, and one replica fits on a pod
    assert gpu["maxReplicas"] * gpus_per_pod >= settings.llm.max_replicas * settings.llm.num_gpus
    assert settings.llm.num_gpus <= gpus_per_pod and settings.llm.num_cpus <= int(limits["cpu"])
    assert gpu["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert groups["head"]["rayStartParams"]["num-cpus"] == "0"  # replicas go to workers
    assert "nvidia.com/gpu" not in _container(groups["cpu"])["resources"]["limits"]


def test_job_commands_parse_with_our_clis():
    from cli.main import main as cli

    jobs = {o["metadata"]["name"]: o for _, o in RAY_OBJECTS if o["kind"] == "RayJob"}
    index = shlex.split(jobs["llama-rag-index"]["spec"]["entrypoint"])
    assert index[:2] == ["llama-rag", "index"]
    ctx = cli.get_command(None, "index").make_context("index", index[2:])
    assert ctx.params["num_gpus"] == 1 and ctx.params["index_dir"] is None  # from the ConfigMap
    command = shlex.split(jobs["llama-rag-classify"]["spec"]["entrypoint"])
    assert command[:3] == ["python", "-m", "pipelines.classify"]
    ctx = cli.get_command(None, "classify").make_context("classify", command[3:])
    assert str(ctx.params["output"]).startswith("/data/")  # on the shared volume: resumable
    assert str(ctx.params["labels_file"]).startswith("/data/")
    command = shlex.split(jobs["llama-rag-finetune"]["spec"]["entrypoint"])
    assert command[:3] == ["python", "-m", "pipelines.finetune"]
    ctx = cli.get_command(None, "finetune").make_context("finetune", command[3:])
    assert ctx.params["workers"] == 4 and ctx.params["gpus_per_worker"] == 1
    assert all(str(p).startswith("/data/") for p in ctx.params["input_"])
    env = jobs["llama-rag-finetune"]["spec"]["runtimeEnvYAML"]
    assert "LLAMA_RAG_ADAPTERS__DIR: \"/data/" in env  # where serve and classify find it
    assert "LLAMA_RAG_ADAPTERS__CHECKPOINTS: \"/data/" in env  # resumable after a retry
    for job in jobs.values():
        assert job["spec"]["shutdownAfterJobFinishes"] is True
        assert any("nvidia.com/gpu" in _container(g)["resources"]["limits"]
                   for _, g in _groups(job))


@pytest.mark.parametrize("name, obj", RAY_OBJECTS, ids=lambda v: v if isinstance(v, str) else "")
def test_environment_is_valid_settings_and_refers_to_shared_objects(name, obj, monkeypatch):
    from llama_rag.config import load_settings

    env: dict[str, str] = {}
    for _, group in _groups(obj):
        for source in _container(group)["envFrom"]:
            kind, ref = next(iter(source.items()))
            shared = SHARED[("ConfigMap" if kind == "configMapRef" else "Secret", ref["name"])]
            env.update(shared.get("data") or shared.get("stringData"))
    if obj["kind"] == "RayJob":
        runtime = yaml.safe_load(obj["spec"]["runtimeEnvYAML"])
        assert set(runtime) == {"env_vars"}
        assert all(isinstance(v, str) for v in runtime["env_vars"].values())
        env.update(runtime["env_vars"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(None, {})  # unknown or invalid LLAMA_RAG_* names fail here
    assert settings.index.dir.startswith(("s3://", "gs://", "/data/"))
    mounts = {m["mountPath"] for _, g in _groups(obj) for m in _container(g)["volumeMounts"]}
    assert any(str(settings.index.cache_dir).startswith(m + "/") for m in mounts)


@pytest.mark.parametrize("name, obj", RAY_OBJECTS, ids=lambda v: v if isinstance(v, str) else "")
def test_volumes_images_and_ray_version_are_consistent(name, obj):
    dockerfile = (ROOT / "infra/docker/gpu.Dockerfile").read_text()
    ray_version = re.search(r"^ARG RAY_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert _cluster(obj)["rayVersion"] == ray_version
    tag = re.search(r"docker build -f infra/docker/gpu.Dockerfile -t (\S+)", dockerfile).group(1)
    for group, spec in _groups(obj):
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert _container(spec)["image"] == tag, group
        assert {m["name"] for m in _container(spec)["volumeMounts"]} <= set(volumes), group
        claims = {v["persistentVolumeClaim"]["claimName"] for v in volumes.values()
                  if "persistentVolumeClaim" in v}
        assert all(("PersistentVolumeClaim", c) in SHARED for c in claims), group
