package cmd

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/verify"
)

func newVerify(g *globals) *cobra.Command {
	var caFiles []string
	c := &cobra.Command{
		Use:   "verify BUNDLE.tar.gz...",
		Short: "Check bundles: checksums, manifest, modes, secrets, certificate chains, keys, SANs",
		Long: `verify reads each bundle in one streaming pass and checks: safe tar entries;
SHA256SUMS against every file; bundle.json against the files (size, sha256,
mode); secrets at 0600 and only the private keys the host's roles need; every
certificate (and every kubeconfig's) valid now, chaining to the CA, matching
its key, and serving certificates naming the host's IP and name. When the
bundles' directory holds SHA256SUMS, the bundles are checked against it too.

Without --ca the bundle's own ca.pem is trusted, which proves the bundle is
consistent, not that it is yours: pass state/pki/ca.pem (and
state/pki/front-proxy-ca.pem) to check against your PKI.
Exit status 1 when any problem is found.`,
		Example: `  kubebake verify out/*.tar.gz --ca state/pki/ca.pem --ca state/pki/front-proxy-ca.pem`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts verify.Options
			for _, p := range caFiles {
				b, err := os.ReadFile(p)
				if err != nil {
					return usageError{fmt.Errorf("--ca: %w", err)}
				}
				opts.CA = append(opts.CA, b...)
			}
			bad := 0
			dirs := map[string]bool{}
			for _, p := range args {
				rep, err := verify.Verify(p, opts)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				if err := verify.WriteReport(g.stdout, rep); err != nil {
					return err
				}
				if !rep.OK() {
					bad++
				}
				dirs[filepath.Dir(p)] = true
			}
			for dir := range dirs {
				if _, err := os.Stat(filepath.Join(dir, "SHA256SUMS")); err != nil {
					continue
				}
				probs, err := verify.VerifySums(dir)
				if err != nil {
					return err
				}
				for _, p := range probs {
					fmt.Fprintln(g.stdout, p)
				}
				if len(probs) > 0 {
					bad++
				} else {
					fmt.Fprintf(g.stdout, "%s: OK\n", filepath.Join(dir, "SHA256SUMS"))
				}
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d checks failed", bad, len(args)+len(dirs))}
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&caFiles, "ca", nil, "trusted CA certificate (PEM); repeat for the front-proxy CA")
	return c
}
