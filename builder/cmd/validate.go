package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidate(g *globals) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "validate",
		Short: "Check bundle-spec.yaml and print every mistake with its line and the fix",
		Long: `validate decodes bundle-spec.yaml, applies the defaults and checks it: unknown
fields, networks and their overlaps, hosts and roles, pod subnets, service IPs,
the VIP, versions, artifact checksums, and what CentOS 7 (kernel 3.10, cgroup
v1, systemd 219) can run. Each finding reads file:line:col: field: problem — fix.
Notes about defaults it applied are printed too. Exit status 1 when any error.`,
		Example: `  kubebake validate -f bundle-spec.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := loadSpec(g, file)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: ok: cluster %s, %d hosts, kubernetes %s\n", file, s.Cluster.Name, len(s.Hosts), s.Versions.Kubernetes)
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "bundle-spec.yaml", "the bundle spec")
	return c
}
