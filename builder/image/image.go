// Package image pulls container images into the store's OCI image layout,
// copies them to registries (from the layout or straight from upstream), and
// cuts smaller per-host layouts out of the store. It is built on
// go-containerregistry and knows nothing of the spec: callers map the spec
// onto Image, Mirror, Cred and Target.
package image

import "time"

// Image is one image to fetch: a short name and a source reference, e.g.
// {"pause", "registry.k8s.io/pause:3.10"}. Ref may be "repo:tag",
// "repo@sha256:…" or "repo:tag@sha256:…" (the digest wins; the tag names it).
type Image struct{ Name, Ref string }

// Mirror rewrites a registry host when fetching: {"registry.k8s.io",
// "127.0.0.1:5001"}. From "docker.io" also matches index.docker.io. The
// source reference recorded in the store and the lock stays the original.
type Mirror struct{ From, To string }

// Locked is an image resolved to digests.
type Locked struct {
	Name, Ref string
	// Digest is what Ref resolved to upstream: an index digest for a
	// multi-arch image, else the manifest digest. Drift is judged on it.
	Digest string
	// Platforms maps "os/arch[/variant]" to the image manifest digest of each
	// platform the store holds for this image ("unknown/unknown" for a
	// single image whose config names no platform).
	Platforms map[string]string
	// Stored is the digest of what the store holds under Ref, and what Push
	// writes to the target tag: Digest when the whole index was kept (or the
	// source was a single manifest); the platform's manifest digest when the
	// filter left one platform; a filtered index (built from the source's
	// own descriptors) when it left several.
	Stored string
	// Index is true when Stored is an index (Platforms lists its children).
	Index bool
}

// Cred names the environment variables that hold a registry's credentials.
// The values never appear in the spec, in errors or in logs.
type Cred struct{ Registry, UsernameEnv, PasswordEnv string }

// Target is a registry to copy images into.
type Target struct {
	Registry string // host[:port]
	Project  string // Harbor project ("public"); "" for a plain registry
	// Flatten keeps only the last path element of the source repository
	// (registry.k8s.io/coredns/coredns → <project>/coredns); the default
	// keeps the whole source path.
	Flatten bool
}

// Pushed reports one image copied to a target.
type Pushed struct {
	Src, Dst, Digest string
	Skipped          bool // the target already held Digest under Dst
}

// Progress is reported through WithProgress.
type Progress struct {
	Op       string // "pull", "push"
	Image    string // source reference
	Blob     string // blob digest, "" for image-level events
	Bytes    int64  // bytes of Blob transferred (0 when skipped)
	Skipped  bool   // Blob or image already present
	Done     bool   // the image is complete
	Elapsed  time.Duration
	Attempts int // attempts the blob or image needed (1 normally)
}

// AnnotationRefName is the OCI annotation holding the source reference on
// each index.json entry of the store's layout.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// AnnotationContainerdName is the annotation containerd's import reads for
// the image name (set by Layout).
const AnnotationContainerdName = "io.containerd.image.name"
