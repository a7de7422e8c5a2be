#!/usr/bin/env bash
# Set everything up and run the main job: build Switchboard and the webhook
# connector, start a local receiver, and deliver the seed onboarding event
# through the real sandbox with `switchboard connector run`.
#
# Until `switchboard serve` exists this is the main job (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p switchboard
cargo build --profile guest --target wasm32-wasip2 --locked -p switchboard-connector-webhook

port_file=$(mktemp)
python3 - "$port_file" <<'PY' &
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        print(f"receiver: {self.command} {self.path}", file=sys.stderr)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            print(f"receiver:   {name}: {self.headers.get(name)}", file=sys.stderr)
        print(f"receiver:   body: {body.decode()}", file=sys.stderr)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
open(sys.argv[1], "w").write(str(server.server_port))
server.handle_request()
PY
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -f "$port_file"' EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")

./target/release/switchboard connector run \
  target/wasm32-wasip2/guest/switchboard_connector_webhook.wasm \
  --action send_webhook \
  --event tests/vectors/page_completed.json \
  --settings "{\"url\": \"http://127.0.0.1:${port}/hooks/onboarding\"}" \
  --secret signing_secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
  --allow-private-networks
