// Command firstboot is the node-side half of kubebake: it reads the bundle
// it was shipped in and converges the host to the bundle's plan. This build
// reads and prints the plan; the installer steps arrive with their issue.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kubebake/kubebake/firstboot/plan"
)

const usage = `firstboot reads a kubebake host bundle and prints its plan.

Usage:
  firstboot [--bundle DIR] plan     print the ordered plan of the unpacked bundle in DIR

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("firstboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("bundle", defaultBundleDir(), "directory holding the unpacked bundle (bundle.json)")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch cmd := fs.Arg(0); cmd {
	case "plan", "":
		m, err := load(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "firstboot: %v\n", err)
			return 1
		}
		if err := m.Describe(stdout); err != nil {
			fmt.Fprintf(stderr, "firstboot: %v\n", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "firstboot: unknown command %q: this build only prints the plan (firstboot plan)\n", cmd)
		return 2
	}
}

// defaultBundleDir is where the bundle was unpacked: beside this binary.
func defaultBundleDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(exe)
}

func load(dir string) (*plan.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, plan.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("%w (is %s an unpacked kubebake bundle? pass --bundle DIR)", err, dir)
	}
	defer f.Close()
	return plan.Decode(f)
}
