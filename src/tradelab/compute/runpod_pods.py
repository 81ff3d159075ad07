"""RunPod GPU pods through the official ``runpod`` SDK: one pod per run attempt, never one forgotten running.

Every pod is named ``tradelab-<idempotency key>`` and tagged through its environment (``TRADELAB_LAB_ID``,
``TRADELAB_RUN_ID``, ``TRADELAB_IDEMPOTENCY_KEY``; RunPod pods have no other tags). :meth:`RunPodBackend.start`
looks the key up before every create, so a worker killed between "pod created" and "pod id recorded", or a
create whose answer was lost, adopts the pod it made instead of making a second one; :meth:`list_owned` finds
every pod of the lab for the reconciler to reap.

Calls are retried with exponential backoff on rate limits (429), server errors (5xx), network errors and
"no capacity" answers; anything else (an unknown GPU type, a bid under the minimum) fails at once.

.. note:: The SDK writes env values and the start command into its GraphQL text without escaping, so a
   value with a double quote, a backslash or a newline is refused here before anything is sent.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from tradelab.compute.base import ComputeBackend, ComputeError, ComputeSpec, ComputeState, Handle, Owned

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: Env keys that tag a pod as the lab's.
LAB_TAG, RUN_TAG, KEY_TAG = "TRADELAB_LAB_ID", "TRADELAB_RUN_ID", "TRADELAB_IDEMPOTENCY_KEY"
_UNSAFE = re.compile(r'["\\\n\r]')
_NO_CAPACITY = "no longer any instances available"


@dataclass
class RunPodConfig:
    """How the lab's pods are made.

    :param image: the lab's Docker image (``infra/docker``), e.g. ``ghcr.io/org/tradelab:<commit>``.
    :param gpu_type: RunPod GPU type id used when a run names none (``runpod.get_gpus()`` lists them).
    :param cloud_type: ``SECURE`` (datacenters), ``COMMUNITY`` (cheaper hosts) or ``ALL``.
    :param interruptible: rent spot pods (cheaper; RunPod may take them back; the run then resumes elsewhere).
    :param bid_per_gpu: spot bid in $/GPU/hour; the GPU type's minimum bid when None.
    :param gpu_count: GPUs per pod.
    :param container_disk_gb: the pod's container disk.
    :param volume_gb: the pod's own volume (0: none).
    :param network_volume_id: a network volume to mount at ``volume_mount_path`` (datasets, artifacts).
    :param lab_id: tags the lab's pods, so two labs sharing an account never touch each other's.
    :param retries: attempts per call on transient errors.
    :param backoff_s: first wait between attempts (doubled each time, at most 30 s).
    :param snapshot_s: how long one listing of the account's pods answers ``status`` and ``cost_so_far``
        (one API call per reconciler tick instead of two per pod).
    :param env: extra environment for every pod (e.g. the S3 settings of the lab's storage).
    """

    image: str
    gpu_type: str = "NVIDIA GeForce RTX 4090"
    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    interruptible: bool = False
    bid_per_gpu: float | None = None
    gpu_count: int = 1
    container_disk_gb: int = 30
    volume_gb: int = 0
    network_volume_id: str | None = None
    volume_mount_path: str = "/workspace"
    lab_id: str = "tradelab"
    retries: int = 6
    backoff_s: float = 1.0
    snapshot_s: float = 0.5
    env: dict[str, str] = field(default_factory=dict)


class RunPodBackend(ComputeBackend):
    """Runs on RunPod GPU pods (the endpoint comes from ``RUNPOD_API_BASE_URL``, as the SDK reads it).

    :param config: image, GPU and pod options.
    :param api_key: the account's API key; it stays in this process and is never put in a pod's environment.
    :param sleep: how to wait between retries (tests pass a recorder).
    """

    name: ClassVar[str] = "runpod"

    def __init__(self, config: RunPodConfig, api_key: str, sleep: Callable[[float], None] = time.sleep) -> None:
        import runpod  # heavy (2 s): imported only when the backend is used

        runpod.api_key = api_key  # the SDK's create and terminate calls read the module-level key
        self.runpod = runpod
        self.config = config
        self.sleep = sleep
        self._prices: dict[str, float] = {}
        self._costs: dict[str, float] = {}  # last cost seen per pod, for pods that are gone
        self._snapshot: tuple[float, dict[str, dict[str, Any]]] | None = None  # (when, pods by id)
        self._guard = threading.Lock()

    # prices
    def price_per_hour(self, gpu_type: str | None) -> float:
        """The pod's hourly price: the bid for a spot pod, else the cloud type's on-demand price, × GPUs."""
        gpu = gpu_type or self.config.gpu_type
        if gpu not in self._prices:
            info = self._call("get GPU type", lambda: self.runpod.get_gpu(gpu, self.config.gpu_count))
            self._prices[gpu] = self._gpu_price(gpu, info) * self.config.gpu_count
        return self._prices[gpu]

    def _gpu_price(self, gpu: str, info: dict[str, Any]) -> float:
        if self.config.interruptible:
            minimum = float((info.get("lowestPrice") or {}).get("minimumBidPrice") or 0.0)
            return self.config.bid_per_gpu or minimum  # RunPod refuses a bid under its minimum at create
        key = {"SECURE": "securePrice", "COMMUNITY": "communityPrice"}.get(self.config.cloud_type)
        prices = [info.get(key)] if key else [info.get("securePrice"), info.get("communityPrice")]
        known = [float(p) for p in prices if p]
        if not known:
            raise ComputeError(f"RunPod has no {self.config.cloud_type} price for {gpu}", transient=False)
        return max(known)  # ALL: the worst case of the two clouds

    # lifecycle
    def start(self, run_id: int, spec: ComputeSpec, idempotency_key: str) -> Handle:
        """Create the run's pod, or return the one already made for ``idempotency_key``."""
        env = {**self.config.env, **spec.env, LAB_TAG: self.config.lab_id, RUN_TAG: str(run_id)}
        env[KEY_TAG] = idempotency_key
        docker_args = _docker_args(spec.command)
        for key, value in {**env, "start command": docker_args}.items():
            if _UNSAFE.search(value):
                message = f"{key} holds a quote, backslash or newline, which RunPod's API cannot take"
                raise ComputeError(message, transient=False)
        gpu = spec.gpu_type or self.config.gpu_type
        price = self.price_per_hour(gpu)

        def create() -> str:
            existing = self._find(idempotency_key)  # a create whose answer was lost may have made it
            if existing is not None:
                return existing
            if self.config.interruptible:
                return self._rent_interruptible(f"tradelab-{idempotency_key}", gpu, docker_args, env, price)
            pod = self.runpod.create_pod(
                f"tradelab-{idempotency_key}",
                self.config.image,
                gpu,
                cloud_type=self.config.cloud_type,
                gpu_count=self.config.gpu_count,
                container_disk_in_gb=self.config.container_disk_gb,
                volume_in_gb=self.config.volume_gb,
                volume_mount_path=self.config.volume_mount_path,
                network_volume_id=self.config.network_volume_id,
                docker_args=docker_args,
                env=env,
                support_public_ip=False,
                start_ssh=False,
            )
            return str(pod["id"])

        pod_id = self._call(f"create the pod of run {run_id}", create)
        self._forget_snapshot()
        logger.info("pod started", extra={"run_id": run_id, "pod_id": pod_id, "gpu": gpu, "price_per_hour": price})
        return Handle(self.name, pod_id)

    def _rent_interruptible(self, name: str, gpu: str, docker_args: str, env: dict[str, str], bid: float) -> str:
        """A spot pod: the SDK has no call for it, so its own mutation text is sent as ``podRentInterruptable``."""
        from runpod.api.graphql import run_graphql_query
        from runpod.api.mutations.pods import generate_pod_deployment_mutation

        mutation = generate_pod_deployment_mutation(
            name, self.config.image, gpu, self.config.cloud_type, False, False, None, None, self.config.gpu_count,
            self.config.volume_gb, self.config.container_disk_gb, None, None, docker_args, None,
            self.config.volume_mount_path, env, None, self.config.network_volume_id,
        )  # fmt: skip
        bid_per_gpu = bid / self.config.gpu_count
        mutation = mutation.replace("podFindAndDeployOnDemand(", "podRentInterruptable(", 1)
        mutation = re.sub(r"input:\s*\{", f"input: {{ bidPerGpu: {bid_per_gpu:.4f},", mutation, count=1)
        return str(run_graphql_query(mutation)["data"]["podRentInterruptable"]["id"])

    def find(self, idempotency_key: str) -> Handle | None:
        """The lab's pod tagged with ``idempotency_key`` (a terminated pod is no longer listed: None)."""
        pod_id = self._call(f"find the pod of {idempotency_key}", lambda: self._find(idempotency_key))
        return None if pod_id is None else Handle(self.name, pod_id)

    def status(self, handle: Handle) -> ComputeState:
        """From the pod's desired status and runtime (a pod without a runtime is still pulling its image)."""
        pod = self._pod(handle.resource_id)
        if pod is None:
            return ComputeState.GONE
        desired = pod.get("desiredStatus")
        if desired == "RUNNING":
            return ComputeState.RUNNING if pod.get("runtime") else ComputeState.PENDING
        if desired == "EXITED":
            # A pod's container is restarted when its command ends, so an exited spot pod was taken back.
            return ComputeState.PREEMPTED if pod.get("podType") == "INTERRUPTABLE" else ComputeState.FAILED
        if desired == "TERMINATED":
            return ComputeState.GONE
        return ComputeState.PENDING

    def logs(self, handle: Handle, tail: int = 100) -> list[str]:
        """Nothing: RunPod's API does not serve container logs; the run agent posts its log to the control plane."""
        return []

    def terminate(self, handle: Handle) -> None:
        """Record the pod's final cost, then terminate it (retried until RunPod confirms)."""
        pod = self._call("read a pod", lambda: self.runpod.get_pod(handle.resource_id))
        if pod is None:
            return
        self._remember_cost(pod)
        self._call(f"terminate pod {handle.resource_id}", lambda: self.runpod.terminate_pod(handle.resource_id))
        self._forget_snapshot()
        logger.info("pod terminated", extra={"pod_id": handle.resource_id, "cost": self._costs[handle.resource_id]})

    def list_owned(self) -> list[Owned]:
        """Every pod of this lab (running, pending or exited: they all bill)."""
        owned = []
        for pod in self._pods().values():
            tags = _env(pod.get("env"))
            if tags.get(LAB_TAG) == self.config.lab_id and RUN_TAG in tags and KEY_TAG in tags:
                owned.append(Owned(Handle(self.name, str(pod["id"])), int(tags[RUN_TAG]), tags[KEY_TAG]))
        return owned

    def cost_so_far(self, handle: Handle) -> float:
        """The pod's hourly price × its billed uptime; the last value seen once the pod is gone."""
        self._pod(handle.resource_id)
        with self._guard:
            return self._costs.get(handle.resource_id, 0.0)

    # helpers
    def _pods(self) -> dict[str, dict[str, Any]]:
        """The account's pods by id, listed at most every ``snapshot_s`` seconds."""
        with self._guard:
            snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot[0] < self.config.snapshot_s:
            return snapshot[1]
        pods = {str(pod["id"]): pod for pod in self._call("list pods", self.runpod.get_pods)}
        for pod in pods.values():
            self._remember_cost(pod)
        with self._guard:
            self._snapshot = (time.monotonic(), pods)
        return pods

    def _pod(self, pod_id: str) -> dict[str, Any] | None:
        """Pod ``pod_id`` from the snapshot, else read alone (made after the listing, or gone: None)."""
        pod = self._pods().get(pod_id)
        if pod is None:
            pod = self._call("read a pod", lambda: self.runpod.get_pod(pod_id))
            if pod is not None:
                self._remember_cost(pod)
        return pod

    def _forget_snapshot(self) -> None:
        with self._guard:
            self._snapshot = None

    def _find(self, idempotency_key: str) -> str | None:
        for pod in self.runpod.get_pods():
            tags = _env(pod.get("env"))
            if tags.get(LAB_TAG) == self.config.lab_id and tags.get(KEY_TAG) == idempotency_key:
                return str(pod["id"])
        return None

    def _remember_cost(self, pod: dict[str, Any]) -> None:
        cost = float(pod.get("costPerHr") or 0.0) * float(pod.get("uptimeSeconds") or 0.0) / 3600.0
        with self._guard:
            self._costs[str(pod["id"])] = max(cost, self._costs.get(str(pod["id"]), 0.0))

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, retried with exponential backoff while it fails transiently.

        :raises ComputeError: a permanent failure at once, a transient one after the last attempt.
        """
        delay = self.config.backoff_s
        for attempt in range(1, self.config.retries + 1):
            try:
                return call()
            except Exception as error:  # the SDK raises requests', its own and ValueError
                transient = _transient(error)
                if not transient or attempt == self.config.retries:
                    raise ComputeError(f"RunPod: could not {what}: {error}", transient=transient) from error
                logger.warning("RunPod call failed, retrying", extra={"call": what, "error": str(error)[:200]})
                self.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")


def _transient(error: Exception) -> bool:
    """Whether retrying may help: network errors and non-JSON answers (429, 5xx pages), or no capacity now."""
    import requests
    from runpod.error import QueryError

    if isinstance(error, requests.RequestException):
        return True
    return isinstance(error, QueryError) and _NO_CAPACITY in str(error).lower()


def _docker_args(command: list[str]) -> str:
    """The pod's start command: the arguments to the image's ``tradelab`` entrypoint."""
    if command[:1] != ["tradelab"]:
        raise ComputeError(f"a pod runs the lab's CLI only, not {command[:1]}", transient=False)
    return shlex.join(command[1:])


def _env(value: Any) -> dict[str, str]:
    """A pod's environment as RunPod returns it (``["KEY=value", ...]``, or a list of ``{key, value}``)."""
    pairs: dict[str, str] = {}
    for item in value or []:
        if isinstance(item, dict):
            pairs[str(item.get("key"))] = str(item.get("value"))
        elif "=" in str(item):
            key, _, rest = str(item).partition("=")
            pairs[key] = rest
    return pairs
