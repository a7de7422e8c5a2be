#!/usr/bin/env bash
# Set everything up and run the main job: build Switchboard (the binary
# carries the bundled connectors, so no connectors dir is configured), start
# `switchboard serve`, create a workspace with a webhook connection to a local
# receiver and a rule for `page.completed`, emit the seed onboarding event
# through the Meshes-compatible ingest API, and show the delivery and its
# attempt as the management API reports them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p switchboard

work=$(mktemp -d)
cleanup() { kill "${server:-}" "${receiver:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A throw-away receiver that prints what it gets.
python3 - "$work/receiver.port" <<'PY' &
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        print(f"receiver: {self.command} {self.path} webhook-id={self.headers.get('webhook-id')}", file=sys.stderr)
        print(f"receiver: body {body.decode()}", file=sys.stderr)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
open(sys.argv[1], "w").write(str(server.server_port))
server.serve_forever()
PY
receiver=$!

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SWITCHBOARD_LISTEN="127.0.0.1:${port}"
export SWITCHBOARD_DATA_DIR="$work/data"
export SWITCHBOARD_EGRESS__ALLOW_PRIVATE_NETWORKS=true   # the receiver is on loopback
./target/release/switchboard serve &
server=$!
base="http://127.0.0.1:${port}"
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do [ -s "$work/receiver.port" ] && break; sleep 0.1; done
admin=$(cat "$work/data/admin_token")
api() { curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' "$@"; }

ws=$(api -X POST "$base/api/v1/workspaces" -d '{"name": "northstar-prod"}')
ws_id=$(jq -r .id <<<"$ws"); pub_key=$(jq -r .publishable_key <<<"$ws")
conn=$(api -X POST "$base/api/v1/workspaces/$ws_id/connections" -d "{
  \"connector\": \"webhook\", \"name\": \"onboarding hook\",
  \"settings\": {\"url\": \"http://127.0.0.1:$(cat "$work/receiver.port")/hooks/onboarding\"},
  \"secrets\": {\"signing_secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}}" | jq -r .id)
api -X POST "$base/api/v1/workspaces/$ws_id/rules" -d "{
  \"event\": \"page.completed\", \"connection\": \"$conn\", \"action\": \"send_webhook\",
  \"filter\": {\"payload\": {\"sequence_step\": {\"\$gte\": 3}}}}" >/dev/null

echo "== emit the seed event (Meshes ingest API)"
event=$(curl -sf -H "X-Meshes-Publishable-Key: $pub_key" -H 'Content-Type: application/json' \
  -d @tests/vectors/page_completed.json "$base/api/v1/events")
jq . <<<"$event"
event_id=$(jq -r .event.id <<<"$event")
for _ in $(seq 100); do
  status=$(api "$base/api/v1/workspaces/$ws_id/events/$event_id" | jq -r .status)
  [ "$status" != processing ] && break; sleep 0.1
done
echo "== the event"
api "$base/api/v1/workspaces/$ws_id/events/$event_id" | jq .
delivery=$(api "$base/api/v1/workspaces/$ws_id/events/$event_id/deliveries" | jq -r '.records[0].id')
echo "== its delivery's attempts"
api "$base/api/v1/workspaces/$ws_id/deliveries/$delivery/attempts" | jq .
