package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/build"
)

func newPull(g *globals) *cobra.Command {
	var f bakeFlags
	c := &cobra.Command{
		Use:   "pull",
		Short: "Fetch every artifact and image into the store and pin them in bundle-spec.lock",
		Long: `pull downloads every artifact of the spec into a content-addressed store
(store/sha256/<hex>), verifying sha256 while streaming against the spec's pin or
the upstream's published checksum, unpacks archives, and pulls every image
into the store's OCI layout (store/images), filtered to the spec's platforms.
It then writes bundle-spec.lock beside the spec: each artifact's URL and
sha256, each image's tag → digest per platform.

An interrupted pull resumes where it stopped (HTTP Range); nothing
half-downloaded carries a final name; transient errors are retried with
backoff. What is already in the store costs no network. mirrors: in the spec
sends requests to a site's Nexus/Artifactory or an offline upstream.
Credentials come from the environment variables the spec names and the docker
config, never from the spec. An image marked optional that cannot be pulled is
reported and left out.

With --locked, pull refuses anything that drifts from the lock.`,
		Example: `  kubebake pull -f bundle-spec.yaml
  kubebake pull --locked --store /srv/kubebake/store`,
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
			res, err := build.Pull(ctx, s, opts...)
			rep.close()
			if err != nil {
				return err
			}
			for _, a := range res.Artifacts {
				fmt.Fprintf(g.stdout, "%s  %-24s %d bytes\n", a.SHA256, a.Name, a.Size)
			}
			for _, im := range res.Images {
				fmt.Fprintf(g.stdout, "%s  %-24s %s\n", im.Digest, im.Name, im.Ref)
			}
			for _, u := range res.Unavailable {
				fmt.Fprintf(g.stderr, "warning: optional image %s (%s) is unavailable and left out: %v\n", u.Name, u.Ref, u.Err)
			}
			state := "unchanged"
			if res.LockChanged {
				state = "written"
			}
			fmt.Fprintf(g.stdout, "%d artifacts, %d images in the store; %s %s\n", len(res.Artifacts), len(res.Images), res.LockFile, state)
			return nil
		},
	}
	f.register(c, false)
	c.Flags().StringVar(&f.store, "store", "store", "content-addressed store for artifacts and images")
	c.Flags().BoolVar(&f.locked, "locked", false, "refuse anything that drifts from bundle-spec.lock")
	return c
}
