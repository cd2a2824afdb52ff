package cmd

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/pxe"
	"github.com/kubebake/kubebake/builder/spec"
)

func newPXE(g *globals) *cobra.Command {
	var file, out string
	c := &cobra.Command{
		Use:   "pxe",
		Short: "Write kickstarts, PXE boot entries and initrd overlays for the baked bundles",
		Long: `pxe reads the bundles kubebake bake wrote (out/<host>.tar.gz, out/SHA256SUMS)
and writes, for the spec's pxe: section, what a site needs to install each
host with CentOS 7's installer over the network:

  out/pxe/ks/<host>.cfg                kickstart (static network, disk, packages,
                                       %post that checks the bundle's sha256,
                                       unpacks it and enables firstboot)
  out/pxe/http/                        bundles/, ks/, ipxe/ and SHA256SUMS, to be
                                       served at pxe.httpBase (kubebake serve)
  out/pxe/tftp/pxelinux.cfg/01-<mac>   BIOS entry per MAC
  out/pxe/tftp/grub.cfg-01-<mac>       UEFI entry per MAC
  out/pxe/tftp/overlay/<host>.cpio.gz  initrd overlay: /ks.cfg, and the bundle
                                       with pxe.bundleDelivery: initrd
  out/pxe/dnsmasq.conf                 DHCP/TFTP snippet

Root's password hash comes from pxe.rootPasswordHashFile or the variable
pxe.rootPasswordHashEnv names, never from the spec, and is never printed.
kubebake build runs this after bake when the spec has a pxe: section.`,
		Example: `  openssl passwd -6 > root.hash     # pxe.rootPasswordHashFile: root.hash
  kubebake pxe -f bundle-spec.yaml
  KUBEBAKE_ROOT_HASH="$(cat /secure/root.hash)" kubebake pxe --out release/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := loadSpec(g, file)
			if err != nil {
				return err
			}
			if s.PXE == nil {
				return &exitError{code: 1, err: fmt.Errorf("%s: %w; add one (see the commented example in the repository's bundle-spec.yaml)", file, pxe.ErrNoPXE)}
			}
			ctx, stop := signalContext()
			defer stop()
			return runPXE(ctx, g, s, out)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "bundle-spec.yaml", "the bundle spec")
	c.Flags().StringVar(&out, "out", "out", "output directory holding <host>.tar.gz and SHA256SUMS; pxe/ is written in it")
	return c
}

// runPXE generates out/pxe and prints what it wrote. kubebake build calls
// it after bake.
func runPXE(ctx context.Context, g *globals, s *spec.Spec, out string) error {
	opts := []pxe.Option{pxe.WithOutDir(out), pxe.WithLogger(g.logger()),
		pxe.WithProgress(func(p pxe.Progress) {
			fmt.Fprintf(g.stderr, "%-9s %d/%d hosts written; %s\n", "pxe", p.Done, p.Total, p.Host)
		})}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec <= 0 {
			return usageError{fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)}
		}
		opts = append(opts, pxe.WithSourceDateEpoch(sec))
	}
	fmt.Fprintf(g.stderr, "%-9s start\n", "pxe")
	res, err := pxe.Generate(ctx, s, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "%-9s done\n", "pxe")
	for _, h := range res.Hosts {
		fmt.Fprintf(g.stdout, "%s  %s  %s  %s  (%d boot entries)\n", h.OverlaySHA, h.Overlay, h.Kickstart, h.Name, len(h.Entries))
	}
	fmt.Fprintf(g.stdout, "wrote %s for %d hosts (delivery %s): %s, %s; tftp-root %s\n",
		res.Dir, len(res.Hosts), s.PXE.BundleDelivery, res.Dnsmasq, res.Sums, res.TFTPRoot)
	for _, p := range res.Pruned {
		fmt.Fprintf(g.stderr, "pxe: removed %s (a host the spec no longer has)\n", p)
	}
	return nil
}
