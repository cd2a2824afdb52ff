package cmd

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/spec"
)

type bakeFlags struct {
	file, artifacts, state, out, firstboot, store string
	jobs                                          int
	locked                                        bool
}

func (f *bakeFlags) register(c *cobra.Command, withBake bool) {
	c.Flags().StringVarP(&f.file, "file", "f", "bundle-spec.yaml", "the bundle spec")
	c.Flags().StringVar(&f.state, "state", "state", "state directory: the PKI (kept between builds), secrets, caches")
	if !withBake {
		return
	}
	c.Flags().StringVar(&f.artifacts, "artifacts", "", "directory of artifacts downloaded by hand, as DIR/<artifact name>/<file> with the published checksum file beside it (default: the store, as bundle-spec.lock pins it)")
	c.Flags().StringVar(&f.store, "store", "store", "content-addressed store filled by kubebake pull")
	c.Flags().StringVar(&f.out, "out", "out", "output directory for <host>.tar.gz and SHA256SUMS")
	c.Flags().StringVar(&f.firstboot, "firstboot", "", "firstboot binary to ship (default: the one embedded by make build)")
	c.Flags().IntVarP(&f.jobs, "jobs", "j", 0, "parallel jobs (default: number of CPUs)")
}

// load reads the spec and turns the flags into build options.
func (f *bakeFlags) load(g *globals) (*spec.Spec, []build.Option, error) {
	s, err := loadSpec(g, f.file)
	if err != nil {
		return nil, nil, err
	}
	opts, err := f.options(g)
	return s, opts, err
}

// options turns flags and SOURCE_DATE_EPOCH into build options.
func (f *bakeFlags) options(g *globals) ([]build.Option, error) {
	opts := []build.Option{build.WithStateDir(f.state), build.WithLogger(g.logger()), build.WithBuilderVersion(version())}
	if f.out != "" {
		opts = append(opts, build.WithOutDir(f.out))
	}
	if f.artifacts != "" {
		opts = append(opts, build.WithArtifactsDir(f.artifacts))
	}
	if f.store != "" {
		opts = append(opts, build.WithStoreDir(f.store))
	}
	if f.locked {
		opts = append(opts, build.WithLocked(true))
	}
	if f.jobs > 0 {
		opts = append(opts, build.WithJobs(f.jobs))
	}
	if f.firstboot != "" {
		b, err := os.ReadFile(f.firstboot)
		if err != nil {
			return nil, usageError{fmt.Errorf("--firstboot: %w", err)}
		}
		opts = append(opts, build.WithFirstboot(b))
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec <= 0 {
			return nil, usageError{fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)}
		}
		opts = append(opts, build.WithSourceDateEpoch(sec))
	}
	return opts, nil
}

// signalContext is cancelled on SIGINT/SIGTERM, so an interrupted bake stops
// between writes; nothing half-written ever carries a final name.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newBake(g *globals) *cobra.Command {
	var f bakeFlags
	c := &cobra.Command{
		Use:   "bake",
		Short: "Build one self-installing bundle per host into out/",
		Long: `bake runs the builder's phases in order:

  pki        issue the cluster PKI into --state (reused on rebuild; a cert is
             re-issued only when its subject, SANs or expiry change or it nears expiry)
  artifacts  take each artifact from the store as bundle-spec.lock pins it (run
             kubebake pull first), or from --artifacts DIR (downloaded by hand)
             checked against the spec or the upstream's published checksum;
             the images each host runs at boot come from the store too
  render     systemd units, configs, kubeconfigs and the node plan per host
  bundle     write out/<host>.tar.gz (with images/, an OCI layout) and out/SHA256SUMS

Output is byte-identical for the same spec, artifacts and state: entries are
sorted, owned by root, stamped with bundle.sourceDateEpoch (SOURCE_DATE_EPOCH
wins), and independent of TZ, umask, locale and working directory. Every file
is written under a temporary name and renamed when complete, so an interrupted
bake leaves nothing half-written; run it again to finish.`,
		Example: `  kubebake bake -f bundle-spec.yaml --artifacts artifacts/
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) kubebake bake --out release/`,
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
			res, err := build.Bake(ctx, s, opts...)
			rep.close()
			if err != nil {
				return err
			}
			printBake(g, res)
			return nil
		},
	}
	f.register(c, true)
	return c
}

func printBake(g *globals, res *build.Result) {
	if len(res.Issued) > 0 {
		fmt.Fprintf(g.stdout, "issued %d certificate(s): %v\n", len(res.Issued), res.Issued)
	}
	for _, b := range res.Bundles {
		fmt.Fprintf(g.stdout, "%s  %s  %d bytes\n", b.SHA256, b.Path, b.Size)
	}
	fmt.Fprintf(g.stdout, "wrote %d bundles and %s\n", len(res.Bundles), res.Sums)
	for _, p := range res.Stale {
		fmt.Fprintf(g.stderr, "warning: %s is from an earlier bake for a host the spec no longer has; it is not in SHA256SUMS — remove it\n", p)
	}
}
