package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/verify"
)

func newInspect(g *globals) *cobra.Command {
	var showPlan bool
	c := &cobra.Command{
		Use:   "inspect BUNDLE.tar.gz",
		Short: "List a bundle's contents by role, with sizes",
		Long: `inspect prints what a bundle holds, grouped by the role that needs it (etcd,
master, node, lb, ops, common), with modes, sizes, which files are secret, and
totals. With --plan it also prints the node plan firstboot will walk.`,
		Example: `  kubebake inspect out/hdss7-21.tar.gz --plan`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, items, err := verify.Inspect(args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := verify.WriteInspect(g.stdout, m, items); err != nil {
				return err
			}
			if showPlan {
				fmt.Fprintln(g.stdout)
				return m.Describe(g.stdout)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&showPlan, "plan", false, "also print the node plan")
	return c
}
