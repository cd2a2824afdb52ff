package render

// auditPolicy is the apiserver's audit policy, after the seed's audit.yaml
// (itself the classic GCE policy): drop the noisy reads of system
// components, record only metadata for secrets and tokens, requests for
// reads, and request+response for writes.
const auditPolicy = `# Rendered by kubebake. Audit policy for kube-apiserver (seed: audit.yaml).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  # kube-proxy watches services and endpoints all day long.
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
      - group: ""
        resources: ["endpoints", "services", "services/status"]
      - group: "discovery.k8s.io"
        resources: ["endpointslices"]
  # Kubelets reading their own node objects.
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get"]
    resources:
      - group: ""
        resources: ["nodes", "nodes/status"]
  # Leader election and endpoint bookkeeping of the control plane.
  - level: None
    users:
      - system:kube-controller-manager
      - system:kube-scheduler
      - system:serviceaccount:kube-system:endpoint-controller
    verbs: ["get", "update"]
    namespaces: ["kube-system"]
    resources:
      - group: ""
        resources: ["endpoints", "configmaps"]
      - group: "coordination.k8s.io"
        resources: ["leases"]
  - level: None
    users: ["system:apiserver"]
    verbs: ["get"]
    resources:
      - group: ""
        resources: ["namespaces", "namespaces/status", "namespaces/finalize"]
  # Health and version probes.
  - level: None
    nonResourceURLs:
      - /healthz*
      - /livez*
      - /readyz*
      - /version
  # Events are an audit trail of their own.
  - level: None
    resources:
      - group: ""
        resources: ["events"]
      - group: "events.k8s.io"
        resources: ["events"]
  # Node status updates are large and frequent: the request is enough.
  - level: Request
    userGroups: ["system:nodes"]
    verbs: ["update", "patch"]
    resources:
      - group: ""
        resources: ["nodes/status", "pods/status"]
  # Never log the contents of secrets, configmaps or tokens.
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps", "serviceaccounts/token"]
      - group: "authentication.k8s.io"
        resources: ["tokenreviews"]
  # Reads: who asked for what.
  - level: Request
    verbs: ["get", "list", "watch"]
  # Writes: what changed.
  - level: RequestResponse
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  # Everything else.
  - level: Metadata
`
