#!/usr/bin/env bash
# `make demo`: the provider sandbox (Google, Microsoft and a NocoBase host stand-in) on :18080
# and the sidecar on :13050 in development mode, with the sandbox's OAuth apps already saved.
# Open http://127.0.0.1:13050/admin/settings/mail, sign in as a sandbox user, link a mailbox.
# Every sandbox mailbox starts with DEMO_MAIL generated messages (200 by default; hostile HTML,
# attachments, threads, several charsets), and user 2 has alice@gmail.test and
# carol@contoso.test linked and synced, so http://127.0.0.1:13050/admin/mail shows mail at once.
set -euo pipefail
cd "$(dirname "$0")/.."

SANDBOX_PORT="${SANDBOX_PORT:-18080}"
SIDECAR_PORT="${SIDECAR_PORT:-13050}"
DEMO_MAIL="${DEMO_MAIL:-200}"
sandbox="http://127.0.0.1:$SANDBOX_PORT"
sidecar="http://127.0.0.1:$SIDECAR_PORT"
dir="data/demo"
mkdir -p "$dir"
[ -f "$dir/jwt_secret.dat" ] || head -c 32 /dev/urandom > "$dir/jwt_secret.dat"

cargo build --quiet --bin email-manager --bin provider-sandbox

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

target/debug/provider-sandbox --bind "127.0.0.1:$SANDBOX_PORT" --jwt-secret-file "$dir/jwt_secret.dat" --mail "$DEMO_MAIL" &
pids+=($!)

export EMAIL_MANAGER__DEV__ENABLED=true
export EMAIL_MANAGER__SERVER__BIND="127.0.0.1:$SIDECAR_PORT"
export EMAIL_MANAGER__HOST__PUBLIC_URL="$sidecar"
export EMAIL_MANAGER__HOST__API_URL="$sandbox/nocobase"
export EMAIL_MANAGER__HOST__JWT_SECRET_FILE="$dir/jwt_secret.dat"
export EMAIL_MANAGER__HOST__REGISTER_URL="$sandbox/nocobase/api/emailManager:register"
export EMAIL_MANAGER__DATABASE__URL="sqlite://$dir/email-manager.db"
export EMAIL_MANAGER__PROVIDERS__GOOGLE__AUTH_URL="$sandbox/google/o/oauth2/v2/auth"
export EMAIL_MANAGER__PROVIDERS__GOOGLE__TOKEN_URL="$sandbox/google/token"
export EMAIL_MANAGER__PROVIDERS__GOOGLE__REVOKE_URL="$sandbox/google/revoke"
export EMAIL_MANAGER__PROVIDERS__GOOGLE__USERINFO_URL="$sandbox/google/v1/userinfo"
export EMAIL_MANAGER__PROVIDERS__GOOGLE__GMAIL_API_BASE="$sandbox/google"
export EMAIL_MANAGER__PROVIDERS__MICROSOFT__AUTHORITY="$sandbox/microsoft"
export EMAIL_MANAGER__PROVIDERS__MICROSOFT__GRAPH_API_BASE="$sandbox/microsoft/graph/v1.0"
target/debug/email-manager &
pids+=($!)

for _ in $(seq 1 100); do curl -fs "$sidecar/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# Save the sandbox's OAuth apps as the admin (user 1) would on the settings page.
token="$(curl -fs -X POST "$sidecar/admin/dev/sign-in" -H 'content-type: application/json' -d '{"userId":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')"
curl -fs -X POST "$sidecar/api/mailSettings:update" -H "authorization: Bearer $token" -H 'content-type: application/json' -d '{
  "google": {"clientId": "sandbox-google-client.apps.googleusercontent.com", "clientSecret": "GOCSPX-sandbox-google-secret", "enabled": true},
  "microsoft": {"clientId": "00000000-0000-4000-8000-00000000a11c", "clientSecret": "sandbox~microsoft~secret", "tenant": "common", "enabled": true}
}' >/dev/null

# Link two sandbox mailboxes for user 2 the way a browser would (authorize, consent, callback),
# then sync them, so the mail center has mail to show. Already linked ones are linked again.
member="$(curl -fs -X POST "$sidecar/admin/dev/sign-in" -H 'content-type: application/json' -d '{"userId":2}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')"
link() {
  local provider="$1" account="$2" consent approve back
  consent="$(curl -fs -X POST "$sidecar/api/mailAccounts:authorize" -H "authorization: Bearer $member" -H 'content-type: application/json' \
    -d "{\"provider\": \"$provider\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["url"])')"
  approve="$(python3 - "$consent" "$account" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
q = u.parse_qsl(p.query) + [("account", sys.argv[2])]
print(u.urlunsplit((p.scheme, p.netloc, p.path + "/approve", u.urlencode(q), "")))
PY
)"
  back="$(curl -fs -o /dev/null -w '%{redirect_url}' "$approve")"
  curl -fs -o /dev/null "$back"
}
if [ "$DEMO_MAIL" -gt 0 ]; then
  link google alice@gmail.test || echo "demo: linking alice@gmail.test failed" >&2
  link microsoft carol@contoso.test || echo "demo: linking carol@contoso.test failed" >&2
  for id in $(curl -fs "$sidecar/api/mailAccounts:list" -H "authorization: Bearer $member" | python3 -c 'import json,sys; print(" ".join(str(a["id"]) for a in json.load(sys.stdin)["data"]))'); do
    curl -fs -o /dev/null -X POST "$sidecar/api/mailAccounts:sync?filterByTk=$id" -H "authorization: Bearer $member" \
      -H 'content-type: application/json' -d '{"wait": true}' || echo "demo: sync of account $id failed" >&2
  done
fi

cat <<MSG

  Email manager demo is running.
    Mail center:    $sidecar/admin/mail   (sign in as user 2: alice@gmail.test and carol@contoso.test, $DEMO_MAIL messages each)
    Settings page:  $sidecar/admin/settings/mail   (sign in as user 1 = admin, or 2/3 = members)
    Sandbox:        $sandbox   (mailboxes alice@gmail.test, bob@gmail.test, carol@contoso.test, dave@contoso.test)
  Press Ctrl-C to stop.

MSG
wait
