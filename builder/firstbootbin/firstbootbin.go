// Package firstbootbin carries the static linux/amd64 firstboot binary inside
// kubebake, so baking needs no Go toolchain. `make build` compiles firstboot
// into bin/ before building kubebake; a kubebake built without it (plain
// `go build`) still works for everything but bake, which says how to fix it.
package firstbootbin

import (
	"embed"
	"errors"
	"io/fs"
)

//go:embed all:bin
var binFS embed.FS

// ErrMissing says this kubebake was built without firstboot.
var ErrMissing = errors.New("this kubebake was built without the firstboot binary: build it with `make build` " +
	"(which compiles firstboot for linux/amd64 and embeds it), or pass --firstboot PATH to a static linux/amd64 firstboot")

// Binary returns the embedded firstboot.
func Binary() ([]byte, error) {
	b, err := fs.ReadFile(binFS, "bin/firstboot")
	if errors.Is(err, fs.ErrNotExist) || len(b) == 0 {
		return nil, ErrMissing
	}
	return b, err
}
