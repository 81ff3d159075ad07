"""The image and RunPod files in ``infra/``, checked without a Docker engine.

The Dockerfile is parsed (continuations and heredocs), its COPY sources checked against the repository and
``.dockerignore``, its base image's torch against the pins, and its entrypoint run from a fresh venv that sees
exactly the locked requirements (the project's ``.venv``, checked against ``requirements.lock``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.infra.pins import read_pins, venv_versions
from tradelab.cli import app

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
BUILD_SH = REPO / "infra" / "docker" / "build.sh"
LOCK = REPO / "requirements.lock"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword, its arguments (continuations joined) and any heredoc bodies."""

    keyword: str
    args: str
    heredocs: tuple[str, ...] = ()
    stage: int = 0

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments and blank lines skipped, ``\\`` continuations joined, heredocs read."""
    lines = text.splitlines()
    out: list[Instruction] = []
    stage = -1
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [line]
        while parts[-1].rstrip().endswith("\\") and i < len(lines):
            parts[-1] = parts[-1].rstrip()[:-1]
            while i < len(lines) and lines[i].lstrip().startswith("#"):  # comments inside a continuation go
                i += 1
            if i < len(lines):
                parts.append(lines[i])
                i += 1
        logical = " ".join(p.strip() for p in parts).strip()
        keyword, _, args = logical.partition(" ")
        heredocs = []
        for match in _HEREDOC.finditer(args):
            body = []
            while i < len(lines) and (lines[i].strip() if match.group(1) else lines[i]) != match.group(3):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"heredoc {match.group(3)} is not terminated"
            i += 1
            heredocs.append("\n".join(body) + "\n")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(keyword.upper(), args.strip(), tuple(heredocs), stage))
    return out


@cache
def instructions() -> tuple[Instruction, ...]:
    return tuple(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


def only(keyword: str) -> Instruction:
    found = [ins for ins in instructions() if ins.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def copy_sources(ins: Instruction) -> tuple[list[str], str, bool]:
    """A COPY/ADD's sources and destination, and whether it copies from another stage (``--from``)."""
    words = shlex.split(ins.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], any(f.startswith("--from=") for f in flags)


def env_values() -> dict[str, str]:
    """The runtime stage's ENV values (``${ARG}`` replaced by the ARG defaults)."""
    last = max(ins.stage for ins in instructions())
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    for ins in instructions():
        if ins.stage != last:
            continue
        if ins.keyword == "ARG" and "=" in ins.args:
            name, _, value = ins.args.partition("=")
            args[name] = value
        if ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                name, _, value = word.partition("=")
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), value)
    return env


# --- .dockerignore ---------------------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go's filepath.Match plus ``**``) as a regex over a relative path."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out)


@cache
def dockerignore() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _pattern_regex(line.lstrip("!").strip("/"))))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out: a rule matching it or a parent folder, the last rule winning."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in dockerignore():
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


def test_dockerignore_matcher() -> None:
    assert ignored(".venv/bin/python")
    assert ignored("src/tradelab/__pycache__/cli.cpython-311.pyc")
    assert ignored("bench/results/env.json")
    assert ignored(".git")
    assert not ignored("src/tradelab/cli.py")
    assert not ignored("bench/bench_env.py")


@cache
def tracked_files() -> tuple[str, ...]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return ()
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return tuple(result.stdout.splitlines())


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    copies = [ins for ins in instructions() if ins.keyword in ("COPY", "ADD")]
    assert copies
    checked = set()
    for ins in copies:
        sources, _, from_stage = copy_sources(ins)
        if from_stage:
            continue
        for source in sources:
            path = REPO / source
            assert path.exists(), f"{ins.keyword} {source}: not in the repository"
            assert not ignored(source), f"{ins.keyword} {source}: excluded by .dockerignore"
            if path.is_dir():
                inside = [f for f in tracked_files() if f.startswith(source.rstrip("/") + "/")]
                left_out = [f for f in inside if ignored(f)]
                assert not left_out, f"{source}: tracked files excluded by .dockerignore: {left_out[:5]}"
            checked.add(source.rstrip("/"))
    assert {"requirements.lock", "src", "tools", "examples", "pyproject.toml"} <= checked


def test_heavy_and_private_paths_stay_out_of_the_build_context() -> None:
    for path in (".venv", ".git", "bench/results", ".tradelab-demo", "node_modules", "tests", ".pytest_cache"):
        assert ignored(path), path


# --- pins -----------------------------------------------------------------------------------------------------


def test_base_image_torch_matches_the_pins() -> None:
    froms = [ins for ins in instructions() if ins.keyword == "FROM"]
    assert froms
    for ins in froms:
        image = ins.args.split()[0]
        match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", image)
        assert match, f"unexpected base image {image}"
        assert match.group(1) == read_pins(REPO / "requirements.txt")["torch"] == read_pins(LOCK)["torch"]


# --- entrypoint and environment --------------------------------------------------------------------------------


def test_entrypoint_is_the_console_script() -> None:
    assert only("ENTRYPOINT").exec_form() == ["tradelab"]
    assert only("CMD").exec_form() == ["--help"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["tradelab"] == "tradelab.cli:app"


def test_image_environment() -> None:
    env = env_values()
    assert env["TRADELAB_HOME"] == "/workspace/tradelab"
    assert env["NUMBA_CACHE_DIR"] == "/opt/tradelab/numba-cache"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["NUMBA_CPU_NAME"] == "generic"  # a cache that loads on any pod's CPU
    # Installed into site-packages, Settings cannot find the repository's tools/: the image points at its copy.
    tools_dest = next(copy_sources(i)[1] for i in instructions() if i.keyword == "COPY" and "tools/" in i.args)
    assert env["TRADELAB_TOOLS_DIR"].rstrip("/") == tools_dest.rstrip("/")
    users = [ins.args for ins in instructions() if ins.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def warmup_script() -> str:
    runs = [ins for ins in instructions() if ins.keyword == "RUN" and ins.heredocs and "python" in ins.args]
    assert len(runs) == 1, "expected one RUN python heredoc (the numba warm-up)"
    script = runs[0].heredocs[0]
    assert "TradingEnv" in script
    return script


def test_parser_reads_continuations_and_heredocs() -> None:
    parsed = parse_dockerfile("FROM a AS b\nRUN x \\\n  # note\n  && y\nRUN cat <<'EOF'\nhello\nEOF\nCMD [\"z\"]\n")
    assert [i.keyword for i in parsed] == ["FROM", "RUN", "RUN", "CMD"]
    assert parsed[1].args == "x && y"
    assert parsed[2].heredocs == ("hello\n",)
    assert parsed[3].exec_form() == ["z"]


# --- build.sh -------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[Path, Path]:
    """A ``docker`` on PATH that records its arguments, one per line."""
    bin_dir, record = tmp_path / "bin", tmp_path / "docker-args"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {shlex.quote(str(record))}\n', encoding="utf-8")
    docker.chmod(0o755)
    return bin_dir, record


def _build_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRADELAB_IMAGE", "PUSH", "LATEST", "ALLOW_DIRTY")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return env | extra


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A throwaway git repository with the build script, the Dockerfile and the lock, committed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "checkout"
    (root / "infra" / "docker").mkdir(parents=True)
    shutil.copy2(BUILD_SH, root / "infra" / "docker" / "build.sh")
    shutil.copy2(DOCKERFILE, root / "infra" / "docker" / "Dockerfile")
    shutil.copy2(LOCK, root / "requirements.lock")
    env = _build_env(tmp_path)
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *cmd], cwd=root, env=env, check=True, capture_output=True)
    return root


def test_build_script_parses() -> None:
    subprocess.run(["bash", "-n", str(BUILD_SH)], check=True)


def test_build_script_needs_an_image_name(checkout: Path, fake_docker: tuple[Path, Path]) -> None:
    bin_dir, record = fake_docker
    result = subprocess.run(
        ["bash", str(checkout / "infra/docker/build.sh")], env=_build_env(bin_dir), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "TRADELAB_IMAGE is not set" in result.stderr
    assert not record.exists()


def test_build_script_builds_the_commit(checkout: Path, fake_docker: tuple[Path, Path]) -> None:
    bin_dir, record = fake_docker
    script = str(checkout / "infra/docker/build.sh")
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = _build_env(bin_dir, TRADELAB_IMAGE="ghcr.io/org/tradelab", PUSH="1", LATEST="1")
    subprocess.run(["bash", script], env=env, check=True, capture_output=True)
    args = record.read_text(encoding="utf-8").splitlines()
    assert args[:2] == ["buildx", "build"]
    assert args[args.index("--platform") + 1] == "linux/amd64"
    assert args[args.index("--file") + 1] == str((checkout / "infra/docker/Dockerfile").resolve())
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--tag"]
    assert tags == [f"ghcr.io/org/tradelab:{sha}", "ghcr.io/org/tradelab:latest"]
    assert "--push" in args
    assert args[-1] == str(checkout.resolve())  # the build context is the repository root

    # A dirty tree is refused unless ALLOW_DIRTY=1.
    record.unlink()
    (checkout / "requirements.lock").write_text("changed\n", encoding="utf-8")
    result = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "uncommitted changes" in result.stderr
    assert not record.exists()
    env["ALLOW_DIRTY"] = "1"
    subprocess.run(["bash", script], env=env, check=True, capture_output=True)
    assert f"ghcr.io/org/tradelab:{sha}" in record.read_text(encoding="utf-8").splitlines()


# --- the entrypoint from a fresh venv with the locked requirements --------------------------------------------


@pytest.mark.slow
def test_entrypoint_runs_from_a_fresh_venv_with_the_locked_requirements(tmp_path: Path) -> None:
    if not VENV_PYTHON.exists():
        pytest.skip("no project .venv (make setup)")
    # The lock is what runs: the project's .venv holds every locked package at its locked version.
    installed = venv_versions(VENV_PYTHON)
    mismatched = {n: (v, installed.get(n)) for n, v in read_pins(LOCK).items() if installed.get(n) != v}
    assert not mismatched, f".venv differs from requirements.lock (name: (locked, installed)): {mismatched}"

    # A fresh venv that sees the locked packages through a .pth file, and tradelab installed like the image does.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(VENV_PYTHON), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    python = venv / "bin" / "python"
    fresh_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(fresh_site, "locked-requirements.pth").write_text(purelib + "\n", encoding="utf-8")

    # The build stage's context: exactly what its COPY instructions take.
    context = tmp_path / "context"
    build_stage = [i for i in instructions() if i.stage == 0 and i.keyword == "COPY"]
    for ins in build_stage:
        sources, dest, _ = copy_sources(ins)
        for source in sources:
            src = REPO / source
            target = context if dest in ("./", ".") else context / dest.rstrip("/")
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)
    pip = [str(VENV_PYTHON), "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, "--no-build-isolation", "--no-index", str(context)], check=True, capture_output=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADELAB_", "NUMBA_", "PYTHONPATH"))}
    env.update(env_values())
    env.update(
        TRADELAB_HOME=str(tmp_path / "home"),
        NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
        TRADELAB_TOOLS_DIR=str(REPO / "tools"),
    )
    where = subprocess.run(
        [str(python), "-c", "import tradelab; print(tradelab.__file__)"], env=env, capture_output=True, text=True
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr

    entrypoint = [str(venv / "bin" / only("ENTRYPOINT").exec_form()[0])]
    cmd = only("CMD").exec_form()
    helped = subprocess.run(entrypoint + cmd, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: tradelab" in helped.stdout
    assert "worker" in helped.stdout  # the pods' start command, `worker run ...` (infra/runpod)
    version = subprocess.run([*entrypoint, "version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert version.stdout.strip() == project["version"]

    # The image's numba warm-up fills NUMBA_CACHE_DIR (index and compiled code).
    warm = subprocess.run(
        [str(python), "-"], input=warmup_script(), env=env, capture_output=True, text=True, timeout=240
    )
    assert warm.returncode == 0, warm.stderr
    cache_files = {p.suffix for p in (tmp_path / "numba-cache").rglob("*") if p.is_file()}
    assert {".nbi", ".nbc"} <= cache_files, cache_files


# --- RunPod ---------------------------------------------------------------------------------------------------


def test_runpod_files_match_the_image_contract() -> None:
    pod = json.loads((REPO / "infra/runpod/pod-template.json").read_text(encoding="utf-8"))
    serverless = json.loads((REPO / "infra/runpod/serverless-endpoint.json").read_text(encoding="utf-8"))
    # Pods: dockerArgs is the CMD after the `tradelab` entrypoint.
    assert only("ENTRYPOINT").exec_form() == ["tradelab"]
    assert pod["dockerArgs"].split()[:3] == ["worker", "run", "--run-id"]
    assert pod["imageName"] == serverless["template"]["imageName"] == "${TRADELAB_IMAGE}:${TAG}"
    assert pod["volumeMountPath"] == "/workspace"
    assert env_values()["TRADELAB_HOME"].startswith(pod["volumeMountPath"] + "/")
    assert not pod["ports"]
    for env in (pod["env"], serverless["template"]["env"]):
        assert {"TRADELAB_API_URL", "TRADELAB_STORAGE_URL"} <= env.keys()
        assert "TRADELAB_RUN_TOKEN" not in env and "TRADELAB_RUNPOD_API_KEY" not in env
    # Serverless: the workers run `tradelab serverless`, a command of the image's CLI.
    assert serverless["template"]["dockerArgs"] == "serverless"
    assert "serverless" in {command.name or command.callback.__name__ for command in app.registered_commands}
    assert serverless["template"]["isServerless"] is True
    endpoint = serverless["endpoint"]
    assert endpoint["workersMin"] == 0 < endpoint["workersMax"]
    assert {"gpuIds", "idleTimeout", "flashboot", "scalerType", "scalerValue"} <= endpoint.keys()
