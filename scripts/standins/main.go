// Command standins writes small executable stand-ins for every artifact of a
// spec, as `kubebake bake --artifacts DIR` reads them, so the demo bakes the
// seed's cluster on a machine that reaches no release site. Each stand-in
// prints that it is one and exits 1. `kubebake pull` brings the real files.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/internal/standin"
)

func main() {
	file := flag.String("f", "bundle-spec.yaml", "the bundle spec")
	out := flag.String("o", "artifacts", "directory to write stand-ins into")
	pad := flag.Int("pad", 0, "bytes of filler per binary")
	flag.Parse()
	s, rep, err := spec.Load(*file)
	if err == nil && rep.IsFatal() {
		err = rep.Err()
	}
	if err == nil {
		err = standin.Generate(s, *out, *pad)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "standins: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("wrote stand-ins for %d artifacts into %s\n", len(s.Artifacts), *out)
}
