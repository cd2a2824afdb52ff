package render

import (
	"sort"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// osUnitConfigs are where the watch of a unit CentOS 7's packages install
// starts: kubebake renders their configuration, not the unit file. A path
// ending in "/" stands for every file of the bundle below it (bind names
// its zone files relative to its directory).
var osUnitConfigs = map[string][]string{
	UnitNginx:      {NginxConf},
	UnitKeepalived: {KeepalivedConf},
	UnitNamed:      {NamedConf, NamedDir + "/"},
	UnitNFSServer:  {ExportsFile},
}

// notWatched are files a component rewrites itself: flanneld replaces the
// rendered subnet.env once it holds its lease, so watching it could restart
// flanneld on every run whose file step put the rendered one back.
var notWatched = map[string]bool{FlannelSubnetEnv: true}

// WatchUnits returns units with Watch filled (plan.Unit.Watch): the files
// of the bundle whose change means the running unit must restart to use
// them. files maps the host path of every file of the host's bundle to its
// content, nil for a file not to read (a binary). It needs the whole list,
// certificates and kubeconfigs included, so the builder calls it where a
// host's bundle is assembled, not from Plan.
//
// A unit watches its unit file (or, for a packaged unit, the configs in
// osUnitConfigs) and every file of the bundle whose absolute path appears
// in a watched file's text, transitively: kubelet.service names the
// kubelet binary, kubelet-config.yaml and kubelet.kubeconfig, and
// kubelet-config.yaml names the CA and the kubelet's serving pair.
// Kubeconfigs embed their certificates, so the kubeconfig itself changes
// with them. A path counts only as a whole word (not inside a longer path),
// and a directory named in a config (the CNI bin directory) adds nothing:
// components read those files as they need them. notWatched files never
// count. The closure visits each
// file at most once, so it is bounded by the bundle; Watch is sorted.
func WatchUnits(units []plan.Unit, files map[string][]byte) []plan.Unit {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]plan.Unit, len(units))
	for i, u := range units {
		u.Watch = watch(u.Name, paths, files)
		out[i] = u
	}
	return out
}

// watch is the closure for one unit over the bundle's sorted paths.
func watch(unit string, paths []string, files map[string][]byte) []string {
	seen := map[string]bool{}
	var queue []string
	add := func(p string) {
		if _, ok := files[p]; ok && !seen[p] && !notWatched[p] {
			seen[p] = true
			queue = append(queue, p)
		}
	}
	add(UnitPath(unit))
	for _, c := range osUnitConfigs[unit] {
		if dir, ok := strings.CutSuffix(c, "/"); ok {
			for _, p := range paths {
				if strings.HasPrefix(p, dir+"/") {
					add(p)
				}
			}
			continue
		}
		add(c)
	}
	for len(queue) > 0 {
		text := string(files[queue[0]])
		queue = queue[1:]
		if text == "" {
			continue // a binary, or empty
		}
		for _, p := range paths {
			if !seen[p] && mentions(text, p) {
				add(p)
			}
		}
	}
	if len(seen) == 0 {
		return nil
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// mentions reports whether text names path p as a whole path: not preceded
// or followed by a character a path goes on with ("/opt/a.pem" is not in
// "/opt/a.pem.bak" nor in "/x/opt/a.pem").
func mentions(text, p string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], p)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(p)
		if (start == 0 || !pathByte(text[start-1])) && (end == len(text) || !pathByte(text[end])) {
			return true
		}
		i = start + 1
	}
}

func pathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/+@", c) >= 0
}
