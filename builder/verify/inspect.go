package verify

import (
	"archive/tar"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Item is one regular file of a bundle, as Inspect lists it.
type Item struct {
	Role   string // plan.Roles, or RoleCommon, RoleBundle, RoleImages
	Path   string // host path for rootfs/ files, else the bundle path
	Size   int64
	Mode   string // octal, e.g. "0644"
	Secret bool   // marked secret in bundle.json, or a secret by name
	Kind   string // KindBinary, KindCert, KindKey, KindKubeconfig, KindUnit, KindConfig, KindImage
}

// Inspect lists a bundle's regular files in archive order with the role
// each belongs to, in one streaming pass that buffers only bundle.json. It
// does not check anything; see Verify. The error covers I/O, an unreadable
// archive (ErrCorrupt) and a missing or invalid bundle.json.
func Inspect(bundlePath string) (*plan.Manifest, []Item, error) {
	var manifest []byte
	var items []Item
	_, err := walk(bundlePath, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == plan.ManifestName {
			b, err := io.ReadAll(io.LimitReader(r, maxIndex+1))
			if err != nil {
				return err
			}
			manifest = b
		}
		mode := h.Mode & 0o7777
		it := Item{Role: roleOf(name), Path: name, Size: h.Size, Mode: plan.FormatMode(uint32(mode)), Kind: kindOf(name, mode)}
		if p := hostPath(name); p != "" {
			it.Path = p
			it.Secret = isSecretName(p)
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("inspect: %w", err)
	}
	if manifest == nil {
		return nil, nil, fmt.Errorf("inspect %s: %s is missing", bundlePath, plan.ManifestName)
	}
	if len(manifest) > maxIndex {
		return nil, nil, fmt.Errorf("inspect %s: %s is larger than %d bytes", bundlePath, plan.ManifestName, maxIndex)
	}
	m, err := plan.Decode(strings.NewReader(string(manifest)))
	if err != nil {
		return nil, nil, fmt.Errorf("inspect %s: %w", bundlePath, err)
	}
	// The manifest says which role needs each file and which are secret;
	// the path rules above only stand in for files it does not list.
	byPath := map[string]plan.File{}
	for _, f := range m.Files {
		byPath[f.Path] = f
	}
	for i := range items {
		f, ok := byPath[items[i].Path]
		if !ok {
			continue
		}
		items[i].Secret = items[i].Secret || f.Secret
		if f.Role != "" {
			items[i].Role = f.Role
		}
	}
	return m, items, nil
}

// WriteInspect prints the host, then the items grouped by role (bundle,
// common, then plan.Roles order, images last), each group sorted by path
// with a total line, then the bundle total. Sizes are human-readable
// (KiB, MiB, GiB). Secrets are flagged, never shown.
func WriteInspect(w io.Writer, m *plan.Manifest, items []Item) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if m != nil {
		fmt.Fprintf(tw, "host %s (%s)  roles %s  cluster %s  format %s\n", m.Host.Name, m.Host.IP, strings.Join(m.Host.Roles, ","), m.Cluster.Name, m.Format)
		var vs []string
		for _, k := range sortedKeys(m.Versions) {
			vs = append(vs, k+" "+m.Versions[k])
		}
		if len(vs) > 0 {
			fmt.Fprintf(tw, "versions %s\n", strings.Join(vs, ", "))
		}
		fmt.Fprintf(tw, "\n")
	}
	groups := map[string][]Item{}
	for _, it := range items {
		groups[it.Role] = append(groups[it.Role], it)
	}
	order := slices.Clone(roleOrder)
	for _, r := range sortedKeys(groups) {
		if !slices.Contains(order, r) {
			order = append(order, r)
		}
	}
	fmt.Fprintf(tw, "ROLE\tPATH\tKIND\tMODE\tSIZE\t\n")
	var total int64
	var secrets int
	for _, r := range order {
		g := groups[r]
		if len(g) == 0 {
			continue
		}
		slices.SortFunc(g, func(a, b Item) int { return strings.Compare(a.Path, b.Path) })
		var sum int64
		for _, it := range g {
			flag := ""
			if it.Secret {
				flag = "secret"
				secrets++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r, it.Path, it.Kind, it.Mode, humanSize(it.Size), flag)
			sum += it.Size
		}
		fmt.Fprintf(tw, "\t%s total: %s\t\t\t%s\t\n", r, plural(len(g), "file"), humanSize(sum))
		total += sum
	}
	fmt.Fprintf(tw, "\ttotal: %s, %d secret\t\t\t%s\t\n", plural(len(items), "file"), secrets, humanSize(total))
	return tw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// humanSize renders n bytes with binary units: 512 B, 1.5 KiB, 40.2 MiB.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return ""
}

// plural is "1 file", "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
