"""Provider log lines for tests: real ones from the provider's issue tracker (research/omni.md §3)
and ones built from its source where no real one was published."""

from __future__ import annotations

import json

START = ('{"level":"info","ts":1778786539.5332415,"caller":"omni-infra-provider-proxmox/main.go:117",'
         '"msg":"starting infra provider"}')
# real lines from the provider's issue tracker (research/omni.md §3)
INSECURE = ('{"level":"info","ts":1778786539.5331445,"caller":"omni-infra-provider-proxmox/main.go:93",'
            '"msg":"using insecure connection to Proxmox"}')
X509_OMNI = ('Error: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication '
             'handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"')
NOT_AUTHORIZED = ('{"level":"error","ts":1763194681.8416061,"caller":"controllers/provision.go:335","msg":"machine '
                  'provision failed","controller":"proxmox.ProvisionController","namespace":"infra-provider","type":'
                  '"MachineRequests.omni.sidero.dev","id":"outghost-prime-workers-6g7cgc","job":"reconcile","error":'
                  '"not authorized to access endpoint","step":"pickNode","stacktrace":"github.com/siderolabs/omni/'
                  'client/pkg/infra/controllers.(*ProvisionController[...]).reconcileRunning\\n\\t/go/pkg/mod/..."}')
RECONCILE_OK = ('{"level":"info","ts":1770198574.1586897,"caller":"qruntime/qruntime.go:310","msg":"reconcile '
                'succeeded","controller":"proxmox.ProvisionController","namespace":"infra-provider","type":'
                '"MachineRequests.omni.sidero.dev","id":"talos-prod-cluster-control-planes-2z2hsn","job":"reconcile",'
                '"busy":0.140967833}')
INVALID_SIGNATURE = "Error: rpc error: code = Unauthenticated desc = invalid signature"
NOT_REGISTERED = ('Error: rpc error: code = PermissionDenied desc = infra provider with name "proxmox" is not '
                  'registered in the system')
ID_MUST_MATCH = 'Error: rpc error: code = InvalidArgument desc = resource ID must match the infra provider ID "proxmox"'
RESOLVER = "Error: rpc error: code = Unavailable desc = name resolver error: produced zero addresses"
PROXY_403 = ('Error: rpc error: code = PermissionDenied desc = unexpected HTTP status code received from server: 403 '
             '(Forbidden); transport: received unexpected content-type "text/html"')
PVE_REFUSED = json.dumps({"level": "error", "ts": 1.0, "msg": "machine provision failed", "step": "pickNode",
                          "error": 'Get "https://pve1.lan:8006/api2/json/nodes": dial tcp 192.168.1.10:8006: '
                                   "connect: connection refused"})
PVE_X509 = json.dumps({"level": "error", "ts": 1.0, "msg": "machine provision failed", "step": "pickNode",
                       "error": 'Get "https://pve1.lan:8006/api2/json/nodes": tls: failed to verify certificate: '
                                "x509: certificate signed by unknown authority"})

REAL_LINES = [START, INSECURE, X509_OMNI, NOT_AUTHORIZED, RECONCILE_OK, INVALID_SIGNATURE, NOT_REGISTERED,
              ID_MUST_MATCH, RESOLVER, PROXY_403, PVE_REFUSED, PVE_X509]
