"""A fake RunPod API on loopback, for driving the real ``runpod`` SDK in tests.

It answers the GraphQL the SDK sends (``gpuTypes``, ``myself``, ``pod``, ``podFindAndDeployOnDemand``,
``podRentInterruptable``, ``podStop``, ``podResume``, ``podTerminate``), parsed with graphql-core and projected onto
the requested selection set. A pod is pending for ``start_delay_s`` (billed, ``runtime`` null), then its container
runs as a local process (``entrypoint + shlex.split(dockerArgs)``) in ``<root>/pods/<pod id>/``. Unlike RunPod, which
restarts a container whose command ends, the fake then marks the pod ``EXITED``. Faults are injected with
:meth:`FakeRunPod.inject` or ``POST /_fake/faults`` (JSON with the same names); ``GET /_fake/state`` dumps pods,
counters and faults.

Run it as a process: ``python -m tradelab.compute.fake_runpod --root DIR [--port N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from graphql import GraphQLError, parse
from graphql.language import DocumentNode, FieldNode, InlineFragmentNode, OperationDefinitionNode, SelectionSetNode
from graphql.utilities import value_from_ast_untyped

NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. Please refresh and try again."
)
ON_DEMAND, INTERRUPTABLE = "RESERVED", "INTERRUPTABLE"
CLOUD_TYPES = ("ALL", "SECURE", "COMMUNITY")


def _gpu(gpu_id: str, name: str, memory: int, cores: int, prices: tuple[float, float, float, float]) -> dict[str, Any]:
    """A GPU type as ``gpuTypes`` returns it; ``prices`` are secure, community, secure spot, community spot."""
    secure, community, secure_spot, community_spot = prices
    return {
        "id": gpu_id,
        "displayName": name,
        "manufacturer": "Nvidia",
        "memoryInGb": memory,
        "cudaCores": cores,
        "maxGpuCount": 8,
        "secureCloud": True,
        "communityCloud": True,
        "securePrice": secure,
        "communityPrice": community,
        "secureSpotPrice": secure_spot,
        "communitySpotPrice": community_spot,
        "oneWeekPrice": round(community * 0.95, 2),
        "oneMonthPrice": round(community * 0.9, 2),
        "threeMonthPrice": round(community * 0.85, 2),
        "lowestPrice": {"minimumBidPrice": community_spot, "uninterruptablePrice": community},
    }


GPU_TYPES: tuple[dict[str, Any], ...] = (
    _gpu("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 16384, (0.69, 0.34, 0.35, 0.20)),
    _gpu("NVIDIA A40", "A40", 48, 10752, (0.40, 0.35, 0.24, 0.20)),
    _gpu("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 6912, (1.64, 1.19, 0.82, 0.60)),
    _gpu("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 16896, (2.99, 2.69, 1.75, 1.45)),
)
NETWORK_VOLUMES: tuple[dict[str, Any], ...] = (
    {"id": "fakevol0data01", "name": "tradelab-data", "size": 50, "dataCenterId": "EU-RO-1"},
    {"id": "fakevol1runs02", "name": "tradelab-runs", "size": 20, "dataCenterId": "US-KS-2"},
)
_SDK_INPUT = {
    "name", "imageName", "cloudType", "startSsh", "gpuTypeId", "supportPublicIp", "gpuCount", "volumeInGb",
    "minVcpuCount", "minMemoryInGb", "allowedCudaVersions", "dataCenterId", "dockerArgs", "countryCode",
    "containerDiskInGb", "ports", "volumeMountPath", "env", "templateId", "networkVolumeId", "minDownload",
    "minUpload",
}  # fmt: skip
_INPUT_FIELDS = {ON_DEMAND: frozenset(_SDK_INPUT), INTERRUPTABLE: frozenset(_SDK_INPUT | {"bidPerGpu"})}
_INPUT_TYPES = {ON_DEMAND: "PodFindAndDeployOnDemandInput", INTERRUPTABLE: "PodRentInterruptableInput"}
_SERVER_ERROR_PAGE = "<html><body><h1>500 Internal Server Error</h1></body></html>"


@dataclass
class Faults:
    """Faults still to serve: counts are "the next N", consumed one per request (or create, terminate)."""

    rate_limit: int = 0
    server_error: int = 0
    fail_create: int = 0
    ghost_create: int = 0
    no_capacity: int = 0
    stuck_pending: int = 0
    preempt_after_s: float | None = None
    terminate_failures: int = 0
    latency_s: float = 0.0


@dataclass(frozen=True)
class FakePod:
    """A snapshot of one pod, terminated ones included (``desired_status`` is then ``TERMINATED``)."""

    id: str
    name: str
    env: dict[str, str]
    docker_args: str
    gpu_type_id: str
    gpu_count: int
    pod_type: str
    desired_status: str
    running: bool  # the container process is alive
    terminated: bool
    preempted: bool  # preempted at least once
    cost_per_hr: float
    uptime_s: float  # seconds billed so far
    cost: float
    created: float  # epoch seconds
    ended: float | None  # when billing last stopped; None while billing
    pid: int | None  # the last container process
    exit_code: int | None  # the last container's, Docker-style (128 + signal when killed)
    folder: Path

    def log(self) -> str:
        """The container's stdout and stderr so far."""
        path = self.folder / "container.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class _Pod:
    id: str
    name: str
    image_name: str
    env: dict[str, str]
    docker_args: str
    gpu: dict[str, Any]
    gpu_count: int
    pod_type: str
    price_per_gpu: float
    data: dict[str, Any]  # the create input, for the fields the fake only echoes
    machine_id: str
    folder: Path
    created: float
    start_at: float
    stuck: bool
    last_status_change: str
    desired_status: str = "RUNNING"
    terminated: bool = False
    preempted: bool = False
    billed_s: float = 0.0
    billing_since: float | None = None
    ended: float | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float | None = None
    pid: int | None = None
    exit_code: int | None = None

    @property
    def cost_per_hr(self) -> float:
        return round(self.price_per_gpu * self.gpu_count, 4)

    def billed(self, now: float) -> float:
        return self.billed_s + (now - self.billing_since if self.billing_since is not None else 0.0)


class _QueryError(Exception):
    """A GraphQL error: answered as ``{"errors": [...]}`` with HTTP 200."""


class _HttpError(Exception):
    """An HTTP error page instead of a GraphQL answer."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status, self.body = status, body


_Response = tuple[int, dict[str, str], bytes]


class FakeRunPod:
    """A fake RunPod GraphQL API with real local processes as containers; a context manager.

    :param root: where pod folders go (``<root>/pods/<pod id>/``, holding ``container.log``).
    :param start_delay_s: how long a pod stays pending (image pull) before its container starts.
    :param start_jitter_s: up to this much more, drawn per pod.
    :param entrypoint: the image's entrypoint; ``dockerArgs`` are its arguments (default: ``tradelab``'s CLI).
    :param base_env: environment every container gets, under the pod's own env (e.g. ``PYTHONPATH``).
    :param api_key: the only bearer token accepted; any non-empty one when None.
    :param port: the port on 127.0.0.1 (0: a free one).
    :param network_volumes: ``myself.networkVolumes`` (id, name, size, dataCenterId).
    :param seed: for pod ids and jitter.
    """

    def __init__(
        self,
        root: Path,
        *,
        start_delay_s: float = 1.0,
        start_jitter_s: float = 0.0,
        entrypoint: list[str] | None = None,
        base_env: dict[str, str] | None = None,
        api_key: str | None = None,
        port: int = 0,
        network_volumes: list[dict[str, Any]] | None = None,
        seed: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.start_delay_s, self.start_jitter_s = start_delay_s, start_jitter_s
        self.entrypoint = list(entrypoint) if entrypoint is not None else [sys.executable, "-m", "tradelab.cli"]
        self.base_env = dict(base_env or {})
        self.api_key = api_key
        self.network_volumes = [dict(v) for v in (network_volumes if network_volumes is not None else NETWORK_VOLUMES)]
        self.faults = Faults()
        self.calls: Counter[str] = Counter()  # top-level fields that reached a resolver, and faults served
        self._port = port
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._pods: dict[str, _Pod] = {}
        self._stopping = threading.Event()
        self._stopped_at: float | None = None
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._resolvers: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
            "query": {"gpuTypes": self._gpu_types, "myself": self._myself, "pod": self._pod},
            "mutation": {
                "podFindAndDeployOnDemand": lambda args: self._create(args.get("input") or {}, ON_DEMAND),
                "podRentInterruptable": lambda args: self._create(args.get("input") or {}, INTERRUPTABLE),
                "podStop": self._stop_pod,
                "podResume": self._resume_pod,
                "podTerminate": self._terminate_pod,
            },
        }

    # lifecycle
    def start(self) -> Self:
        """Serve on 127.0.0.1 and start advancing pod states."""
        (self.root / "pods").mkdir(parents=True, exist_ok=True)
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.fake = self
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-runpod-http", daemon=True),
            threading.Thread(target=self._monitor, name="fake-runpod-monitor", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and kill every container process (billing is frozen at this moment)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            self._stopped_at = self._stopped_at or time.time()
            for pod in self._pods.values():
                self._kill(pod)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The value for ``RUNPOD_API_BASE_URL``."""
        if self._server is None:
            raise RuntimeError("the fake is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # test API
    def inject(self, **faults: Any) -> None:
        """Set faults by name (see :class:`Faults`); counts replace what was left.

        :raises TypeError: an unknown fault name.
        :raises ValueError: a value that is not a number (``preempt_after_s`` may be None).
        """
        unknown = sorted(set(faults) - {f.name for f in fields(Faults)})
        if unknown:
            raise TypeError(f"unknown faults: {', '.join(unknown)}")
        values = {name: _fault_value(name, value) for name, value in faults.items()}
        with self._lock:
            for name, value in values.items():
                setattr(self.faults, name, value)

    def pods(self, include_terminated: bool = True) -> list[FakePod]:
        """Snapshots of the pods, oldest first."""
        with self._lock:
            now = self._now()
            return [self._snapshot(p, now) for p in self._pods.values() if include_terminated or not p.terminated]

    def live_pods(self) -> list[FakePod]:
        """The pods RunPod still lists (not terminated)."""
        return self.pods(include_terminated=False)

    def pod(self, pod_id: str) -> FakePod:
        """One pod's snapshot.

        :raises KeyError: no pod of that id was ever created.
        """
        with self._lock:
            return self._snapshot(self._pods[pod_id], self._now())

    def total_cost(self) -> float:
        """What every pod has cost so far, terminated ones included."""
        return sum(p.cost for p in self.pods())

    def preempt(self, pod_id: str) -> None:
        """Take an interruptible pod back now, as a higher bid would.

        :raises KeyError: no live pod of that id.
        :raises ValueError: the pod is on-demand, or not running.
        """
        with self._lock:
            pod = self._pods.get(pod_id)
            if pod is None or pod.terminated:
                raise KeyError(pod_id)
            if pod.pod_type != INTERRUPTABLE or pod.desired_status != "RUNNING":
                raise ValueError(f"pod {pod_id} is {pod.pod_type} and {pod.desired_status}: nothing to preempt")
            self._preempt(pod, self._now())

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` until it holds.

        :raises TimeoutError: it did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.02)

    # HTTP
    def handle(self, method: str, path: str, authorization: str, body: bytes) -> _Response:
        """One HTTP request: status, headers and body."""
        path = path.split("?", 1)[0]
        if path == "/_fake/faults" and method == "POST":
            try:
                self.inject(**json.loads(body or b"{}"))
            except (TypeError, ValueError) as error:
                return _json(400, {"error": str(error)})
            return _json(200, asdict(self.faults))
        if path == "/_fake/state" and method == "GET":
            with self._lock:
                state = {"pods": [asdict(p) for p in self.pods()], "calls": dict(self.calls)}
                return _json(200, {**state, "faults": asdict(self.faults)})
        if path != "/graphql" or method != "POST":
            return _text(404, "Not Found")
        time.sleep(self.faults.latency_s)
        token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
        if not token or (self.api_key is not None and token != self.api_key):
            return _text(401, "Unauthorized")
        with self._lock:
            if self._take("rate_limit"):
                return 429, {"Content-Type": "text/plain", "Retry-After": "1"}, b"Too Many Requests"
            if self._take("server_error"):
                return _text(500, _SERVER_ERROR_PAGE, "text/html")
        try:
            request = json.loads(body)
            document = parse(request["query"])
        except GraphQLError as error:
            return _json(400, {"errors": [{**error.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]})
        except (ValueError, KeyError, TypeError):
            return _json(400, {"errors": [{"message": "POST body must be JSON with a 'query' string"}]})
        try:
            return self._execute(document, request.get("operationName"), request.get("variables") or {})
        except _HttpError as fault:
            return _text(fault.status, fault.body, "text/html")

    def _execute(self, document: DocumentNode, operation_name: str | None, variables: dict[str, Any]) -> _Response:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
        if not chosen:
            return _json(400, {"errors": [{"message": f"Unknown operation named {operation_name!r}."}]})
        operation = chosen[0]
        kind = operation.operation.value
        resolvers = self._resolvers.get(kind, {})
        nodes = [n for n in operation.selection_set.selections if isinstance(n, FieldNode)]
        for node in nodes:
            if node.name.value not in resolvers:
                message = f'Cannot query field "{node.name.value}" on type "{kind.capitalize()}".'
                error = {"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
                return _json(400, {"errors": [error]})
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        with self._lock:
            for node in nodes:
                key = (node.alias or node.name).value
                self.calls[node.name.value] += 1
                args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in node.arguments or ()}
                try:
                    data[key] = _project(resolvers[node.name.value](args), node.selection_set)
                except _QueryError as failure:
                    data[key] = None
                    errors.append({"message": str(failure), "path": [key], "extensions": {"code": "BAD_USER_INPUT"}})
        return _json(200, {"data": data, **({"errors": errors} if errors else {})})

    # resolvers (called under the lock)
    def _gpu_types(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = (args.get("input") or {}).get("id")
        return [dict(g) for g in GPU_TYPES if wanted is None or g["id"] == wanted]

    def _myself(self, args: dict[str, Any]) -> dict[str, Any]:
        now = self._now()
        pods = [self._view(p, now) for p in self._pods.values() if not p.terminated]
        volumes = [dict(v) for v in self.network_volumes]
        return {"id": "user_fake", "pubKey": "", "pods": pods, "networkVolumes": volumes}

    def _pod(self, args: dict[str, Any]) -> dict[str, Any] | None:
        pod = self._pods.get(str((args.get("input") or {}).get("podId")))
        return None if pod is None or pod.terminated else self._view(pod, self._now())

    def _create(self, data: dict[str, Any], pod_type: str) -> dict[str, Any]:
        unknown = sorted(set(data) - _INPUT_FIELDS[pod_type])
        if unknown:
            raise _QueryError(f'Field "{unknown[0]}" is not defined by type "{_INPUT_TYPES[pod_type]}".')
        gpu = next((g for g in GPU_TYPES if g["id"] == data.get("gpuTypeId")), None)
        if gpu is None:
            raise _QueryError(f"Invalid gpuTypeId: {data.get('gpuTypeId')!r} is not a GPU type.")
        cloud = str(data.get("cloudType") or "ALL")
        if cloud not in CLOUD_TYPES:
            raise _QueryError(f'Value "{cloud}" does not exist in "CloudTypeEnum" enum.')
        if not data.get("imageName"):
            raise _QueryError("imageName is required.")
        volume = data.get("networkVolumeId")
        if volume is not None and all(v["id"] != volume for v in self.network_volumes):
            raise _QueryError(f"Network volume {volume} not found.")
        gpu_count = int(data.get("gpuCount") or 1)
        env = _env_input(data.get("env"))
        if pod_type == INTERRUPTABLE:
            if data.get("bidPerGpu") is None:
                raise _QueryError("bidPerGpu is required for an interruptible pod.")
            price = float(data["bidPerGpu"])
            minimum = gpu["secureSpotPrice"] if cloud == "SECURE" else gpu["lowestPrice"]["minimumBidPrice"]
            if price < minimum:
                message = f"Your bid of ${price:.3f}/hr per GPU is below the minimum bid of ${minimum:.3f}/hr"
                raise _QueryError(f"{message} for {gpu['id']}.")
        else:
            price = gpu["securePrice"] if cloud == "SECURE" else gpu["communityPrice"]
        if self._take("no_capacity") or gpu_count > gpu["maxGpuCount"]:
            raise _QueryError(NO_CAPACITY)
        if self._take("fail_create"):
            raise _HttpError(500, _SERVER_ERROR_PAGE)
        now = self._now()
        pod_id = self._new_id()
        pod = _Pod(
            id=pod_id,
            name=str(data.get("name") or ""),
            image_name=str(data["imageName"]),
            env=env,
            docker_args=str(data.get("dockerArgs") or ""),
            gpu=gpu,
            gpu_count=gpu_count,
            pod_type=pod_type,
            price_per_gpu=price,
            data=data,
            machine_id=self._new_id(),
            folder=self.root / "pods" / pod_id,
            created=now,
            start_at=now + self._start_delay(),
            stuck=self._take("stuck_pending"),
            last_status_change=f"Rented by User: {_iso(now)}",
            billing_since=now,
        )
        pod.folder.mkdir(parents=True, exist_ok=True)
        self._pods[pod.id] = pod
        if self._take("ghost_create"):
            raise _HttpError(500, _SERVER_ERROR_PAGE)
        return self._view(pod, now)

    def _stop_pod(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = self._live(args)
        now = self._now()
        if pod.desired_status == "RUNNING":
            self._halt(pod, now, f"Stopped by User: {_iso(now)}")
        return self._view(pod, now)

    def _resume_pod(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = self._live(args)
        if pod.desired_status == "RUNNING":
            raise _QueryError(f"Pod {pod.id} is already running.")
        now = self._now()
        pod.gpu_count = int((args.get("input") or {}).get("gpuCount") or pod.gpu_count)
        pod.desired_status, pod.start_at, pod.billing_since, pod.ended = "RUNNING", now + self._start_delay(), now, None
        pod.last_status_change = f"Resumed by User: {_iso(now)}"
        return self._view(pod, now)

    def _terminate_pod(self, args: dict[str, Any]) -> None:
        if self._take("terminate_failures"):
            raise _HttpError(500, _SERVER_ERROR_PAGE)
        pod = self._live(args)
        now = self._now()
        self._halt(pod, now, f"Terminated by User: {_iso(now)}")
        pod.terminated, pod.desired_status = True, "TERMINATED"

    # state
    def _monitor(self) -> None:
        while not self._stopping.wait(0.05):
            with self._lock:
                now = self._now()
                for pod in self._pods.values():
                    if not pod.terminated and pod.desired_status == "RUNNING":
                        self._advance(pod, now)

    def _advance(self, pod: _Pod, now: float) -> None:
        if pod.process is None:
            if not pod.stuck and now >= pod.start_at:
                self._launch(pod, now)
            return
        if pod.process.poll() is not None:
            self._kill(pod)  # reaps it, records its code, and kills what it left behind
            self._halt(pod, now, f"Exited with code {pod.exit_code}: {_iso(now)}")
            return
        after = self.faults.preempt_after_s
        if pod.pod_type == INTERRUPTABLE and after is not None and now - (pod.started or now) >= after:
            self._preempt(pod, now)

    def _launch(self, pod: _Pod, now: float) -> None:
        """Start the pod's container: the entrypoint with its docker args, in its folder, with its env only."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "HOME": str(pod.folder),
            **self.base_env,
            **pod.env,
            "RUNPOD_POD_ID": pod.id,
            "RUNPOD_GPU_COUNT": str(pod.gpu_count),
        }
        pod.started = now
        with (pod.folder / "container.log").open("ab") as log:
            try:
                argv = [*self.entrypoint, *shlex.split(pod.docker_args)]
                pod.process = subprocess.Popen(
                    argv, cwd=pod.folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            except (OSError, ValueError) as error:  # no such entrypoint, or unbalanced quotes in dockerArgs
                log.write(f"container failed to start: {error}\n".encode())
                pod.exit_code = 127
                self._halt(pod, now, f"Exited with code 127: {_iso(now)}")
                return
        pod.pid = pod.process.pid

    def _preempt(self, pod: _Pod, now: float) -> None:
        pod.preempted = True
        self._halt(pod, now, f"Preempted: outbid by a higher bid at {_iso(now)}")

    def _halt(self, pod: _Pod, now: float, status_change: str) -> None:
        """Kill the container, stop billing, mark the pod EXITED."""
        self._kill(pod)
        if pod.billing_since is not None:
            pod.billed_s += now - pod.billing_since
            pod.billing_since, pod.ended = None, now
        pod.desired_status, pod.last_status_change = "EXITED", status_change

    def _kill(self, pod: _Pod) -> None:
        """SIGKILL the container's process group (what its command left behind included) and reap it."""
        if pod.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pod.process.pid, signal.SIGKILL)
        code = pod.process.wait()
        pod.exit_code = 128 - code if code < 0 else code
        pod.process = None

    def _view(self, pod: _Pod, now: float) -> dict[str, Any]:
        """The pod as RunPod's ``Pod`` type answers it."""
        running = pod.process is not None
        runtime = None
        if running and pod.started is not None:
            runtime = {
                "uptimeInSeconds": int(now - pod.started),
                "ports": [],
                "gpus": [
                    {"id": f"GPU-{pod.machine_id}-{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
                    for i in range(pod.gpu_count)
                ],
                "container": {"cpuPercent": 0, "memoryPercent": 0},
            }
        return {
            "id": pod.id,
            "name": pod.name,
            "imageName": pod.image_name,
            "env": [f"{k}={v}" for k, v in pod.env.items()],
            "dockerArgs": pod.docker_args,
            "dockerId": None,
            "gpuCount": pod.gpu_count,
            "vcpuCount": 8 * pod.gpu_count,
            "memoryInGb": 46 * pod.gpu_count,
            "costPerHr": pod.cost_per_hr,
            "podType": pod.pod_type,
            "desiredStatus": pod.desired_status,
            "lastStatusChange": pod.last_status_change,
            "uptimeSeconds": int(pod.billed(now)),
            "machineId": pod.machine_id,
            "machine": {
                "podHostId": f"{pod.id}-{pod.machine_id[:8]}",
                "gpuDisplayName": pod.gpu["displayName"],
                "gpuTypeId": pod.gpu["id"],
            },
            "containerDiskInGb": pod.data.get("containerDiskInGb"),
            "volumeInGb": pod.data.get("volumeInGb"),
            "volumeMountPath": pod.data.get("volumeMountPath"),
            "networkVolumeId": pod.data.get("networkVolumeId"),
            "port": None,
            "ports": pod.data.get("ports") or "",
            "runtime": runtime,
        }

    def _snapshot(self, pod: _Pod, now: float) -> FakePod:
        billed = pod.billed(now)
        return FakePod(
            id=pod.id,
            name=pod.name,
            env=dict(pod.env),
            docker_args=pod.docker_args,
            gpu_type_id=pod.gpu["id"],
            gpu_count=pod.gpu_count,
            pod_type=pod.pod_type,
            desired_status=pod.desired_status,
            running=pod.process is not None,
            terminated=pod.terminated,
            preempted=pod.preempted,
            cost_per_hr=pod.cost_per_hr,
            uptime_s=billed,
            cost=pod.cost_per_hr * billed / 3600.0,
            created=pod.created,
            ended=pod.ended,
            pid=pod.pid,
            exit_code=pod.exit_code,
            folder=pod.folder,
        )

    def _live(self, args: dict[str, Any]) -> _Pod:
        pod_id = str((args.get("input") or {}).get("podId"))
        pod = self._pods.get(pod_id)
        if pod is None or pod.terminated:
            raise _QueryError(f"Pod not found: {pod_id}")
        return pod

    def _take(self, fault: str) -> bool:
        """Consume one of a counted fault; count it as served."""
        left = getattr(self.faults, fault)
        if left <= 0:
            return False
        setattr(self.faults, fault, left - 1)
        self.calls[fault] += 1
        return True

    def _new_id(self) -> str:
        while True:
            new = "".join(self._rng.choices(string.ascii_lowercase + string.digits, k=12))
            if new not in self._pods:
                return new

    def _start_delay(self) -> float:
        return self.start_delay_s + self._rng.uniform(0.0, self.start_jitter_s)

    def _now(self) -> float:
        return self._stopped_at if self._stopped_at is not None else time.time()


class _Server(ThreadingHTTPServer):
    fake: FakeRunPod


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, payload = self.server.fake.handle(
            method, self.path, self.headers.get("Authorization", ""), body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def _project(value: Any, selection: SelectionSetNode | None) -> Any:
    """``value`` cut down to the requested fields (unknown ones are null), as a GraphQL server answers."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for node in selection.selections:
        if isinstance(node, FieldNode):
            out[(node.alias or node.name).value] = _project(value.get(node.name.value), node.selection_set)
        elif isinstance(node, InlineFragmentNode):
            out.update(_project(value, node.selection_set))
    return out


def _fault_value(name: str, value: Any) -> float | int | None:
    """A fault as :class:`Faults` holds it: seconds as floats (``preempt_after_s`` may be None), counts as ints."""
    if name.endswith("_s"):
        return None if value is None and name == "preempt_after_s" else float(value)
    return int(value)


def _env_input(value: Any) -> dict[str, str]:
    """``env: [{key, value}, ...]`` as a dict."""
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(i, dict) and i.get("key") for i in value):
        raise _QueryError("env must be a list of {key, value}.")
    return {str(i["key"]): "" if i.get("value") is None else str(i["value"]) for i in value}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _json(status: int, payload: Any) -> _Response:
    return status, {"Content-Type": "application/json"}, json.dumps(payload, default=str).encode()


def _text(status: int, text: str, content_type: str = "text/plain") -> _Response:
    return status, {"Content-Type": content_type}, text.encode()


def main(argv: list[str] | None = None) -> None:
    """Serve a fake RunPod until SIGTERM or SIGINT; the URL is the first line on stdout."""
    parser = argparse.ArgumentParser(prog="python -m tradelab.compute.fake_runpod", description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True, help="folder for the pods' folders")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--start-delay", type=float, default=1.0, help="seconds a pod stays pending")
    parser.add_argument("--entrypoint", help="the image's entrypoint, shell-quoted (default: the tradelab CLI)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="base env of containers")
    parser.add_argument("--api-key", help="the only bearer token accepted")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    entrypoint = shlex.split(args.entrypoint) if args.entrypoint else None
    base_env = dict(item.split("=", 1) for item in args.env)
    fake = FakeRunPod(
        args.root, start_delay_s=args.start_delay, entrypoint=entrypoint, base_env=base_env,
        api_key=args.api_key, port=args.port,
    )  # fmt: skip
    with fake:
        print(f"fake runpod listening on {fake.url}", flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
