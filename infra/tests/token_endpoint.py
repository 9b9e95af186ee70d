"""A stand-in for Azure's managed-identity token endpoint, so that `terraform plan` runs offline.

The azurerm provider acquires a token when it is configured, before any plan, and reads
three claims from it (oid, tid, appid: go-azure-sdk's claims.Claims). Pointed at this
endpoint (ARM_USE_MSI, ARM_MSI_ENDPOINT), it gets an unsigned token with those claims
and nothing else. A plan of resources that do not exist yet, with -refresh=false and no
data sources, then asks Azure nothing: the token is never sent anywhere. The request and
response follow the instance metadata service's token API that go-azure-sdk's
ManagedIdentityAuthorizer calls (GET ?api-version=...&resource=..., JSON with
access_token and expires_in).
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TENANT_ID = "00000000-0000-0000-0000-00000000000a"
CLIENT_ID = "00000000-0000-0000-0000-00000000000b"
OBJECT_ID = "00000000-0000-0000-0000-00000000000c"


def _segment(document):
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def unsigned_token(resource):
    claims = {"aud": resource, "oid": OBJECT_ID, "tid": TENANT_ID, "appid": CLIENT_ID}
    return ".".join([_segment({"alg": "none", "typ": "JWT"}), _segment(claims), ""]) + "unsigned"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        from urllib.parse import parse_qs, urlparse

        resource = parse_qs(urlparse(self.path).query).get("resource", [""])[0]
        self.server.requests.append(resource)
        body = json.dumps({"access_token": unsigned_token(resource), "token_type": "Bearer",
                           "expires_in": "3600", "resource": resource}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ManagedIdentityEndpoint:
    """Serves tokens on 127.0.0.1 until closed; `environment` configures the provider to ask it."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.requests = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}/metadata/identity/oauth2/token"

    @property
    def requests(self):
        """The resources tokens were asked for."""
        return list(self._server.requests)

    def environment(self):
        return {"ARM_USE_MSI": "true", "ARM_MSI_ENDPOINT": self.url, "ARM_USE_CLI": "false",
                "ARM_TENANT_ID": TENANT_ID}

    def close(self):
        self._server.shutdown()
        self._server.server_close()
