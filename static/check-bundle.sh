#!/usr/bin/env bash
# Prove the committed bundle is the build of the committed sources: build static/src
# into a temporary directory with the locked packages and compare it, byte for byte,
# with static/index.html and static/app/. Exit 1 with the differing files otherwise.
# Needs node_modules (npm ci). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
CANVASFLOW_BUILD_DIR="$out" npx --no-install vite build --logLevel warn
status=0
for f in index.html $(cd "$out" && find app -type f | sort); do
    if ! cmp -s "$out/$f" "static/$f"; then
        echo "check-bundle: static/$f differs from a fresh build of static/src" >&2
        status=1
    fi
done
# nothing committed under static/app that the build no longer makes
for f in $(cd static && find app -type f | sort); do
    if [ ! -e "$out/$f" ]; then
        echo "check-bundle: static/$f is not made by the build any more" >&2
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "check-bundle: run 'npm run build' and commit static/index.html and static/app/" >&2
else
    echo "check-bundle: static/index.html and static/app/ are the build of static/src"
fi
exit "$status"
