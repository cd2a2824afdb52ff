// Command kubebake turns bundle-spec.yaml into per-host bundles for a
// Kubernetes cluster installed "the binary way". It only wires the CLI;
// the work lives in the packages beside it.
package main

import (
	"os"

	"github.com/kubebake/kubebake/builder/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:], os.Stdout, os.Stderr))
}
