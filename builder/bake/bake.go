// Package bake writes host bundles, out/<host>.tar.gz, byte for byte
// reproducibly and atomically, compressing payload shared between hosts once.
//
// A bundle is a tar stream (GNU format, entries sorted by name, every parent
// directory listed before its contents, uid/gid 0 "root", one fixed mtime,
// normalised modes) compressed as a concatenation of gzip members (RFC 1952
// §2.2; gzip -d, GNU tar xzf and Go's gzip.Reader read it as one stream).
// The tar stream is cut at entry boundaries: each entry of at least 64 KiB
// (header, data, padding) is a member of its own, compressed once into the
// cache directory and copied into every bundle that holds it; runs of smaller
// entries share one member compressed per bundle; the last member holds the
// tar end-of-archive blocks.
//
// Every file is written to a temporary name, fsynced and renamed, so a bake
// killed at any moment leaves no partial file under a final name, and a
// rerun reuses the members already cached and removes the stale temporaries.
package bake

// Entry is one regular file, or a directory if Name ends in "/", of a bundle.
// Parent directories need not be listed: they are added with mode 0755.
type Entry struct {
	// Name is the slash-separated path inside the tar, clean and relative,
	// e.g. "bundle.json" or "rootfs/opt/kubernetes/bin/kubelet".
	Name string
	// Mode holds the permission bits, including setuid, setgid and sticky
	// bits only when given; other bits are an error. Zero means 0644 for a
	// file and 0755 for a directory.
	Mode uint32
	// SHA256 is the hex sha256 of the content, computed by the caller. Bake
	// checks it while reading and fails on a mismatch. Empty for directories.
	SHA256 string
	// Size is the content length in bytes.
	Size int64
	// Data is small in-memory content. At most one of Data and Path is set.
	Data []byte
	// Path names a file (or FIFO) on disk to stream; it is never read whole
	// into memory.
	Path string
}

// Bundle is one host's bundle.
type Bundle struct {
	// Name is the host name; the bundle is written to <outDir>/<Name>.tar.gz.
	Name string
	// Entries in any order; Write sorts them.
	Entries []Entry
}

// Result describes one written bundle.
type Result struct {
	Name   string // bundle (host) name
	Path   string // <outDir>/<Name>.tar.gz
	SHA256 string // hex sha256 of the file
	Size   int64  // file size in bytes
}

// Progress is a snapshot of a Write in progress.
type Progress struct {
	Bundles     int // bundles to write
	BundlesDone int // bundles written

	Members     int // distinct shared members the bundles need
	MembersDone int // members ready: Compressed + Reused
	Compressed  int // members compressed by this Write
	Reused      int // members found in the cache

	Bytes     int64 // uncompressed bytes of all shared members
	BytesDone int64 // of which compressed or found in the cache
}
