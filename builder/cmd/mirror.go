package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/build"
)

func newMirror(g *globals) *cobra.Command {
	var f bakeFlags
	var from string
	c := &cobra.Command{
		Use:   "mirror",
		Short: "Copy the spec's images into the site's Harbor (or any OCI registry)",
		Long: `mirror copies every image of the spec into registry.host under
registry.project (harbor.od.com/public/… by default), keeping each image's
upstream path (registry.k8s.io/coredns/coredns → public/coredns/coredns).

On Harbor (detected through /api/v2.0/systeminfo) it first creates the
project if missing and, when registry.robot is set, a robot account with push
and pull whose secret is written once to a 0600 file. A plain OCI registry
gets the images alone.

Blobs and manifests already present are skipped (a re-run with nothing to do
takes well under a second), blobs are mounted across repositories, images
are copied in parallel, and every pushed digest is read back and checked.

--from store (the default) pushes what kubebake pull put in the store, as
bundle-spec.lock pins it: it works inside the gap, with no upstream
reachable. --from upstream copies straight from the upstream registries.
Credentials: the environment variables named in credentials[], then the
docker config. The registry's TLS is checked against the system roots and
the cluster CA in --state (kubebake issues harbor.od.com's certificate).`,
		Example: `  kubebake mirror -f bundle-spec.yaml
  HARBOR_USERNAME=admin HARBOR_PASSWORD=… kubebake mirror --from upstream`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, opts, err := f.load(g)
			if err != nil {
				return err
			}
			switch from {
			case "store":
			case "upstream":
				opts = append(opts, build.WithMirrorFromUpstream(true))
			default:
				return usageError{fmt.Errorf("--from %q: want store or upstream", from)}
			}
			rep := newReporter(g.stderr)
			opts = append(opts, build.WithProgress(rep.event))
			ctx, stop := signalContext()
			defer stop()
			res, err := build.Mirror(ctx, s, opts...)
			rep.close()
			if err != nil {
				return err
			}
			printMirror(g, res)
			return nil
		},
	}
	f.register(c, false)
	c.Flags().StringVar(&f.store, "store", "store", "content-addressed store filled by kubebake pull")
	c.Flags().StringVar(&from, "from", "store", "where images come from: store or upstream")
	return c
}

func printMirror(g *globals, res *build.MirrorResult) {
	kind := "plain OCI registry"
	if res.Harbor != "" {
		kind = "Harbor " + res.Harbor
	}
	fmt.Fprintf(g.stdout, "registry %s (%s)\n", res.Registry, kind)
	if res.ProjectCreated {
		fmt.Fprintln(g.stdout, "project created")
	}
	if res.Robot != "" {
		fmt.Fprintf(g.stdout, "robot %s created; secret in %s (0600)\n", res.Robot, res.RobotFile)
	}
	skipped := 0
	for _, p := range res.Pushed {
		state := "pushed"
		if p.Skipped {
			state = "present"
			skipped++
		}
		fmt.Fprintf(g.stdout, "%-7s %s  %s\n", state, p.Digest, p.Dst)
	}
	fmt.Fprintf(g.stdout, "%d images, %d already present\n", len(res.Pushed), skipped)
}
