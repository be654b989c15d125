#!/usr/bin/env bash
# Fuzzes the merchant API against openapi.yaml with schemathesis (every check): serves the
# router on 127.0.0.1 over a throwaway embedded store (examples/serve_api.rs), then runs
# examples, coverage, fuzzing and stateful phases. Fails on any 5xx, any response that does
# not conform to the spec, and any request the spec and the API disagree about.
#
# `POST /v1/auth-callback/test` is left out: it calls whatever URL the generated config
# holds, and tests send traffic to loopback only (its behaviour is covered by tests/api).
#
# Uses $SCHEMATHESIS, else .venv/bin/schemathesis, else installs it into target/.
# Extra arguments go to `schemathesis run` (e.g. --max-examples 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"

st="${SCHEMATHESIS:-}"
if [ -z "$st" ] && [ -x .venv/bin/schemathesis ]; then
  st=.venv/bin/schemathesis
elif [ -z "$st" ]; then
  st="$target/schemathesis-venv/bin/schemathesis"
  if [ ! -x "$st" ]; then
    echo "==> installing schemathesis into $target/schemathesis-venv"
    python3 -m venv "$target/schemathesis-venv"
    "$target/schemathesis-venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
  fi
fi

cargo build --quiet -p webhooks-api --example serve_api
work="$(mktemp -d)"
# The local stack's URL policy, whatever the environment says: schemathesis makes up URLs.
WEBHOOKS_ALLOW_HTTP=true WEBHOOKS_ALLOW_PRIVATE_URLS=true \
  "$target/debug/examples/serve_api" >"$work/server.out" 2>"$work/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  grep -q '^RETRY_EVENT_ID=' "$work/server.out" && break
  sleep 0.1
done
url="$(sed -n 's/^URL=//p' "$work/server.out")"
key="$(sed -n 's/^API_KEY=//p' "$work/server.out")"
[ -n "$key" ] || { echo "serve_api did not start" >&2; cat "$work/server.log" >&2; exit 1; }
RETRY_SUBSCRIPTION_ID="$(sed -n 's/^RETRY_SUBSCRIPTION_ID=//p' "$work/server.out")"
RETRY_EVENT_ID="$(sed -n 's/^RETRY_EVENT_ID=//p' "$work/server.out")"
export RETRY_SUBSCRIPTION_ID RETRY_EVENT_ID

"$st" --config-file shared/api/schemathesis.toml run openapi.yaml \
  --url "$url" -H "Authorization: Bearer $key" \
  --checks all --exclude-tag local \
  --exclude-name 'POST /v1/auth-callback/test' \
  --max-examples 100 --seed 5 --generation-database none --workers 1 \
  --max-time 90 --request-timeout 15 --no-color "$@" || {
  status=$?
  echo "--- serve_api log (last 40 lines)" >&2
  tail -n 40 "$work/server.log" >&2
  exit "$status"
}
