// Package cmd binds kubebake's library to cobra: flags in, one library call,
// the result out. No logic lives here that a test of the library would miss.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/kubebake/kubebake/builder/spec"
)

// Version is stamped by the Makefile (-X); otherwise the module's build info.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// exitError carries an exit code for failures that are not usage errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs kubebake with args and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "kubebake: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "kubebake: %v\n", err)
	if isUsage(err) {
		fmt.Fprintln(stderr, "Run 'kubebake --help' for usage.")
		return 2
	}
	return 1
}

type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

type globals struct {
	stdout, stderr io.Writer
	verbose        bool
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "kubebake",
		Short: "Bake bundle-spec.yaml into self-installing per-host Kubernetes bundles",
		Long: `kubebake turns one bundle-spec.yaml into everything an air-gapped site needs to
stand up Kubernetes "the binary way": a PKI issued once with cfssl and kept in
a state directory, kubeconfigs, systemd units and configs, and one verified,
byte-reproducible bundle per host (out/<host>.tar.gz) with a static firstboot
binary that installs it.

Typical flow:
  kubebake validate -f bundle-spec.yaml
  kubebake build    -f bundle-spec.yaml     # pull → mirror → bake
  kubebake verify   out/*.tar.gz
  kubebake certs    -f bundle-spec.yaml
  kubebake pxe      -f bundle-spec.yaml     # kickstarts, boot entries, initrd overlays
  kubebake serve    -f bundle-spec.yaml     # out/pxe/http, each host's files to that host only`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log every step")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newValidate(g), newPull(g), newMirror(g), newBake(g), newBuild(g), newPXE(g), newServe(g), newCerts(g), newVerify(g), newInspect(g))
	return root
}

// loadSpec loads, defaults and validates the spec, printing the report; it
// fails when the report holds an error.
func loadSpec(g *globals, file string) (*spec.Spec, error) {
	s, rep, err := spec.Load(file)
	if err != nil {
		return nil, err
	}
	for _, e := range rep.Entries {
		fmt.Fprintln(g.stderr, e.String())
	}
	if rep.IsFatal() {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s: %d error(s); nothing was written", file, rep.Count(spec.Error))}
	}
	return s, nil
}
