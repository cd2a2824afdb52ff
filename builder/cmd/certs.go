package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/pki"
)

func newCerts(g *globals) *cobra.Command {
	var f bakeFlags
	var within time.Duration
	c := &cobra.Command{
		Use:   "certs",
		Short: "Issue the cluster PKI into the state directory and print the expiry ledger",
		Long: `certs runs bake's pki phase alone: it issues every certificate the spec's
hosts need that is missing, changed (subject, SANs, expiry) or within
pki.renewBefore of expiry, and reuses the rest byte for byte. It then prints the
ledger: file, CN, O, SANs, not-after, days left, and which hosts receive it.

With --warn-within, it exits 1 when any certificate expires within that time:
run it from cron to hear about expiry before the cluster does.`,
		Example: `  kubebake certs -f bundle-spec.yaml
  kubebake certs --state /srv/kubebake/state --warn-within 2160h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, opts, err := f.load(g)
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			set, err := build.Certs(ctx, s, opts...)
			if err != nil {
				return err
			}
			if issued := set.Issued(); len(issued) > 0 {
				fmt.Fprintf(g.stderr, "issued %d: %v\n", len(issued), issued)
			}
			now := time.Now()
			ledger, err := pki.Ledger(build.PKIDir(f.state), now)
			if err != nil {
				return err
			}
			if err := pki.WriteLedger(g.stdout, ledger); err != nil {
				return err
			}
			if within > 0 {
				var soon []string
				for _, e := range ledger {
					if !e.NotAfter.IsZero() && e.NotAfter.Before(now.Add(within)) {
						soon = append(soon, fmt.Sprintf("%s (%d days)", e.Name, e.DaysLeft))
					}
				}
				if len(soon) > 0 {
					return &exitError{code: 1, err: fmt.Errorf("%d certificate(s) expire within %s: %v", len(soon), within, soon)}
				}
			}
			return nil
		},
	}
	f.register(c, false)
	c.Flags().DurationVar(&within, "warn-within", 0, "exit 1 if any certificate expires within this duration (e.g. 2160h)")
	return c
}
