package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/build"
)

func newBuild(g *globals) *cobra.Command {
	var f bakeFlags
	var skipMirror bool
	c := &cobra.Command{
		Use:   "build",
		Short: "pull → mirror → bake (→ pxe) in one go",
		Long: `build runs kubebake pull (artifacts and images into the store, pinned in
bundle-spec.lock), kubebake mirror (images into the site registry, from the
store) and kubebake bake (one bundle per host, with the images each host runs
at boot as an OCI layout under images/). Each stage is incremental: a re-run
does only what is missing. --skip-mirror bakes without a registry. When the
spec has a pxe: section, kubebake pxe runs last (kickstarts, boot entries and
initrd overlays under out/pxe).`,
		Example: `  kubebake build -f bundle-spec.yaml
  kubebake build --locked --skip-mirror --out release/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, opts, err := f.load(g)
			if err != nil {
				return err
			}
			rep := newReporter(g.stderr)
			opts = append(opts, build.WithProgress(rep.event))
			ctx, stop := signalContext()
			defer stop()
			defer rep.close()
			pulled, err := build.Pull(ctx, s, opts...)
			if err != nil {
				return err
			}
			for _, u := range pulled.Unavailable {
				fmt.Fprintf(g.stderr, "warning: optional image %s (%s) is unavailable and left out: %v\n", u.Name, u.Ref, u.Err)
			}
			if !skipMirror {
				// Mirror needs the registry's certificate, issued by the PKI.
				if _, err := build.Certs(ctx, s, opts...); err != nil {
					return err
				}
				res, err := build.Mirror(ctx, s, opts...)
				if err != nil {
					return err
				}
				printMirror(g, res)
			}
			res, err := build.Bake(ctx, s, opts...)
			if err != nil {
				return err
			}
			printBake(g, res)
			if s.PXE != nil {
				return runPXE(ctx, g, s, f.out)
			}
			return nil
		},
	}
	f.register(c, true)
	c.Flags().BoolVar(&f.locked, "locked", false, "refuse anything that drifts from bundle-spec.lock")
	c.Flags().BoolVar(&skipMirror, "skip-mirror", false, "do not push images to the registry")
	return c
}
