"""What a merchant's Python code does with our webhooks (Standard Webhooks library).

Reads one JSON request on stdin, writes one JSON answer on stdout:
  sw-verify  {secret: "whsec_..", messages: [{id, timestamp, signature, body}]} -> ["ok" | error]
  sw-sign    {secret: "whsec_..", messages: [{id, timestamp, body}]}            -> [signature]
"""
import json
import sys
from datetime import datetime, timezone

from standardwebhooks import Webhook


def sw_verify(request):
    wh = Webhook(request["secret"])
    results = []
    for m in request["messages"]:
        headers = {"webhook-id": m["id"], "webhook-timestamp": str(m["timestamp"]), "webhook-signature": m["signature"]}
        try:
            wh.verify(m["body"], headers)
            results.append("ok")
        except Exception as error:  # the library raises WebhookVerificationError and friends
            results.append(str(error) or type(error).__name__)
    return results


def sw_sign(request):
    wh = Webhook(request["secret"])
    return [
        wh.sign(m["id"], datetime.fromtimestamp(m["timestamp"], tz=timezone.utc), m["body"])
        for m in request["messages"]
    ]


MODES = {"sw-verify": sw_verify, "sw-sign": sw_sign}

if __name__ == "__main__":
    mode = MODES.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if mode is None:
        sys.exit(f"unknown mode; expected one of {', '.join(MODES)}")
    json.dump(mode(json.load(sys.stdin)), sys.stdout)
