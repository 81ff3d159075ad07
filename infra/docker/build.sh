#!/usr/bin/env bash
# Build tradelab's image for linux/amd64 with docker buildx, tagged with the short git commit.
#
#   TRADELAB_IMAGE=ghcr.io/org/tradelab infra/docker/build.sh
#
# TRADELAB_IMAGE  image name without tag (required), e.g. ghcr.io/org/tradelab
# PUSH=1          push the image (--push) instead of loading it into the local engine (--load)
# LATEST=1        also tag it :latest
# ALLOW_DIRTY=1   build from a tree with uncommitted changes (the tag then names a commit the image differs from)
# Extra arguments are passed to `docker buildx build` (e.g. --build-arg NUMBA_CPU_NAME=host).
set -euo pipefail

die() {
    echo "build.sh: $*" >&2
    exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DOCKERFILE="$ROOT/infra/docker/Dockerfile"

[[ -n "${TRADELAB_IMAGE:-}" ]] || die "TRADELAB_IMAGE is not set; set it to the image name without tag, e.g. TRADELAB_IMAGE=ghcr.io/org/tradelab"
[[ "$TRADELAB_IMAGE" != *:* || "$TRADELAB_IMAGE" == *:*/* ]] || die "TRADELAB_IMAGE must not carry a tag (got '$TRADELAB_IMAGE'); the tag is the git commit"
command -v docker >/dev/null 2>&1 || die "docker is not on PATH"
command -v git >/dev/null 2>&1 || die "git is not on PATH"

TAG="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" || die "$ROOT is not a git checkout with a commit"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]]; then
    if [[ "${ALLOW_DIRTY:-0}" == "1" ]]; then
        echo "build.sh: warning: uncommitted changes; the image tagged $TAG differs from that commit" >&2
    else
        die "the working tree has uncommitted changes; commit them, or set ALLOW_DIRTY=1 to build anyway"
    fi
fi
[[ -f "$ROOT/requirements.lock" ]] || die "requirements.lock is missing; run scripts/lock.sh"

args=(buildx build --platform linux/amd64 --file "$DOCKERFILE" --tag "$TRADELAB_IMAGE:$TAG"
    --label "org.opencontainers.image.revision=$(git -C "$ROOT" rev-parse HEAD)")
[[ "${LATEST:-0}" == "1" ]] && args+=(--tag "$TRADELAB_IMAGE:latest")
if [[ "${PUSH:-0}" == "1" ]]; then
    args+=(--push)
else
    args+=(--load)
fi

echo "build.sh: building $TRADELAB_IMAGE:$TAG for linux/amd64$([[ "${PUSH:-0}" == "1" ]] && echo ', pushing')" >&2
docker "${args[@]}" "$@" "$ROOT"
echo "build.sh: built $TRADELAB_IMAGE:$TAG" >&2
