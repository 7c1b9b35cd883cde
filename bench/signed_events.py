"""Signed webhook events for the benchmark: the real SDK fixtures, each delivery a new event uuid
and a handful of users, signed with the local stack's demo connection secret (read from Secrets
Manager on moto, where `make run`'s seeding put it)."""

import base64
import glob
import hashlib
import hmac
import json
import os
import time

import boto3

CONNECTION = "conn_demo"


def secret():
    sm = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    prefix = os.environ.get("SECRET_PREFIX", "flowback/local/")
    return sm.get_secret_value(SecretId=f"{prefix}webhook/{CONNECTION}")["SecretString"]


def sign(key, msg_id, ts, body):
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_events(n):
    key = base64.b64decode(secret().removeprefix("whsec_"))
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = sorted(glob.glob(os.path.join(here, "..", "tests", "fixtures", "posthog", "*.json")))
    bodies = [json.load(open(f)) for f in fixtures]
    for i in range(n):
        event = json.loads(json.dumps(bodies[i % len(bodies)]))
        event["event"]["uuid"] = f"30000000-0000-4000-8000-{i:012d}"
        event["event"]["distinct_id"] = f"bench-user-{i % 7}"
        body = json.dumps(event).encode()
        ts = int(time.time())
        msg_id = f"msg_bench_{i}"
        yield {
            "version": "2.0",
            "routeKey": "POST /webhooks/posthog/{connection_id}",
            "rawPath": f"/webhooks/posthog/{CONNECTION}",
            "rawQueryString": "",
            "headers": {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(key, msg_id, ts, body),
            },
            "requestContext": {
                "accountId": "000000000000", "apiId": "bench", "domainName": "127.0.0.1", "domainPrefix": "bench",
                "http": {"method": "POST", "path": f"/webhooks/posthog/{CONNECTION}", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "bench"},
                "requestId": f"bench-{i}", "routeKey": "POST /webhooks/posthog/{connection_id}",
                "stage": "$default", "time": str(ts), "timeEpoch": ts * 1000,
            },
            "pathParameters": {"connection_id": CONNECTION},
            "body": body.decode(),
            "isBase64Encoded": False,
        }
