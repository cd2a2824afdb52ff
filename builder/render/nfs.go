package render

// The ops host's NFS export (role ops): nfs-utils 1.3 from CentOS 7's base
// repository serves /data/nfs-volume to the node network, rw and
// no_root_squash as the seed does, and an example PersistentVolume, claim
// and pod that use it are left in /opt/kubebake/examples for the operator
// to apply with the ops host's kubectl and admin kubeconfig. Nodes mount it
// with their own nfs-utils (the kickstart installs it on nodes).
//
// Where kubebake differs from the seed: the export also spells out sync
// and no_subtree_check, the defaults exportfs would otherwise warn about
// assuming; the unit is nfs-server.service (the seed's "nfs" is its alias).

import (
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// NFS files and unit.
const (
	ExportsFile  = "/etc/exports"
	NFSExportDir = "/data/nfs-volume"
	// NFSExportReadme lives in the export: installing it (files come
	// before units) creates the directory before nfs-server.service runs
	// exportfs, which skips an export whose directory is missing.
	NFSExportReadme = NFSExportDir + "/README.kubebake"
	ExamplesDir     = KubebakeDir + "/examples"
	UnitNFSServer   = "nfs-server.service" // CentOS 7 nfs-utils
	// NFSExampleName names the example PersistentVolume, claim and pod.
	NFSExampleName = "nfs-volume-example"
)

// NFSExample is the example PV/PVC/pod manifest on the ops host.
var NFSExample = path.Join(ExamplesDir, "nfs-volume.yaml")

// nfsFiles renders /etc/exports, the export's README and the example.
func (r *renderer) nfsFiles() ([]File, error) {
	netw, err := netip.ParsePrefix(r.s.Cluster.NodeNetwork)
	if err != nil || !netw.Addr().Is4() {
		return nil, fmt.Errorf("%w: cluster.nodeNetwork %q: want an IPv4 CIDR for the NFS export", ErrHost, r.s.Cluster.NodeNetwork)
	}
	server, err := ipv4Of(r.h.Name, r.h.IP)
	if err != nil {
		return nil, err
	}
	exports := fmt.Sprintf("# /etc/exports on %s (role ops). Rendered by kubebake from bundle-spec.yaml.\n"+
		"# Do not edit: rebuild the bundle. Target: nfs-utils 1.3 (CentOS 7).\n"+
		"%s %s(rw,sync,no_root_squash,no_subtree_check)\n", r.h.Name, NFSExportDir, netw.Masked())
	readme := fmt.Sprintf("This directory is exported over NFS by %s (kubebake, role ops) to %s,\n"+
		"rw and no_root_squash: see /etc/exports. Pods use it through\n"+
		"%s or an inline nfs volume (server %s, path %s).\n"+
		"Each workload keeps its data in its own subdirectory.\n",
		r.h.Name, netw.Masked(), NFSExample, server, NFSExportDir)
	return []File{
		{Path: ExportsFile, Mode: 0o644, Content: []byte(exports), Role: plan.RoleOps},
		{Path: NFSExportReadme, Mode: 0o644, Content: []byte(readme), Role: plan.RoleOps},
		{Path: NFSExample, Mode: 0o644, Content: []byte(r.nfsExample(server)), Role: plan.RoleOps},
	}, nil
}

// nfsExample is a PersistentVolume on the export, a claim bound to it by
// name, and a pod that mounts the claim (in its own subdirectory) and, the
// seed's way, the export inline. The pod runs the pause image every node
// already has (preloaded from the bundle), so it needs nothing else from
// the registry; it is Running exactly when the NFS mount works.
func (r *renderer) nfsExample(server string) string {
	n := NFSExampleName
	var b strings.Builder
	fmt.Fprintf(&b, `# %s: an example of shared storage on %s's NFS export.
# Rendered by kubebake. Apply on %s: kubectl apply -f %s
# The pod is Running once both NFS mounts work; kubectl delete -f the same
# file removes it (the data stays on %s:%s).
apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s
spec:
  capacity:
    storage: 1Gi
  accessModes:
    - ReadWriteMany
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  nfs:
    server: %s
    path: %s
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: %s
  namespace: default
spec:
  accessModes:
    - ReadWriteMany
  storageClassName: ""
  volumeName: %s
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  containers:
    - name: pause
      image: %s
      volumeMounts:
        # the claim; the kubelet creates the subdirectory
        - name: data
          mountPath: /data
          subPath: %s
        # the seed's way: the export named in the pod itself
        - name: export
          mountPath: /export
          readOnly: true
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: %s
    - name: export
      nfs:
        server: %s
        path: %s
        readOnly: true
`, NFSExample, r.h.Name, r.h.Name, NFSExample, server, NFSExportDir,
		n, server, NFSExportDir,
		n, n,
		n, r.pauseImage(), n, n, server, NFSExportDir)
	return b.String()
}
