package fetch

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// maxChecksumFile caps a checksum file's size.
const maxChecksumFile = 1 << 20

// parseChecksum understands the formats upstreams publish: a bare hex digest
// (dl.k8s.io's <binary>.sha256), sha256sum(1) lines (etcd's SHA256SUMS,
// containerd's .sha256sum), from which it takes the line naming file, and
// GitHub's release JSON with a per-asset "digest".
func parseChecksum(data []byte, file string) (string, error) {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return githubDigest(data, file)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxChecksumFile)
	var only string
	lines := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		lines++
		if !isHex64(f[0]) {
			continue
		}
		if len(f) == 1 {
			only = f[0]
			continue
		}
		name := strings.TrimPrefix(f[1], "*")
		if strings.TrimPrefix(name, "./") == file || path.Base(name) == file {
			return strings.ToLower(f[0]), nil
		}
	}
	if only != "" && lines == 1 {
		return strings.ToLower(only), nil
	}
	return "", fmt.Errorf("no sha256 for %s in it", file)
}

// githubDigest reads GitHub's release JSON (the only published checksum of
// projects such as flannel that ship no checksum file).
func githubDigest(data []byte, file string) (string, error) {
	var rel struct {
		Assets []struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		} `json:"assets"`
	}
	if err := json.Unmarshal(data, &rel); err != nil {
		return "", fmt.Errorf("not a checksum file nor a GitHub release: %w", err)
	}
	for _, a := range rel.Assets {
		if d, ok := strings.CutPrefix(a.Digest, "sha256:"); a.Name == file && ok && isHex64(d) {
			return strings.ToLower(d), nil
		}
	}
	return "", fmt.Errorf("no sha256 digest for asset %s in it", file)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func baseName(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return path.Base(u.Path)
	}
	return path.Base(raw)
}
