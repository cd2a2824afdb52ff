// Package overlays embeds the files kubebake lays over bundles. Templates
// live here, at the top level the project's layout gives them, and not in
// builder/render, because go:embed reads only files at or below the
// embedding package's directory; the renderer (builder/render/addons.go)
// executes them.
package overlays

import "embed"

// Addons holds the add-on manifest templates (text/template over YAML),
// one file per add-on. The file names sort in apply order.
//
//go:embed addons/*.yaml
var Addons embed.FS
