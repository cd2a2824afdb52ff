package image

import (
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// srcRef is a parsed source reference.
type srcRef struct {
	orig   string          // as given, recorded in the store and the lock
	repo   name.Repository // after mirror rewriting (what is fetched)
	tag    string          // "" when given by digest only
	digest string          // "" when given by tag only
}

// fetchRef is what to GET: the digest when known, else the tag.
func (s srcRef) fetchRef() name.Reference {
	if s.digest != "" {
		return s.repo.Digest(s.digest)
	}
	return s.repo.Tag(s.tag)
}

// splitRef splits "repo[:tag][@digest]" without resolving anything.
func splitRef(ref string) (repo, tag, digest string, err error) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
		if _, err := v1.NewHash(digest); err != nil {
			return "", "", "", fmt.Errorf("image %q: bad digest: %w", ref, err)
		}
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	return repo, tag, digest, nil
}

// parseSrc parses ref and applies mirrors to its registry.
func parseSrc(ref string, o *options) (srcRef, error) {
	repoStr, tag, digest, err := splitRef(ref)
	if err != nil {
		return srcRef{}, err
	}
	repo, err := name.NewRepository(repoStr)
	if err != nil {
		return srcRef{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if tag != "" {
		if _, err := name.NewTag(repoStr + ":" + tag); err != nil {
			return srcRef{}, fmt.Errorf("image %q: %w", ref, err)
		}
	}
	host := repo.RegistryStr()
	for _, m := range o.mirrors {
		if m.From == host || (m.From == "docker.io" && host == name.DefaultRegistry) {
			host = m.To
			break
		}
	}
	var nopts []name.Option
	if o.insecure[host] {
		nopts = append(nopts, name.Insecure)
	}
	repo, err = name.NewRepository(host+"/"+repo.RepositoryStr(), nopts...)
	if err != nil {
		return srcRef{}, fmt.Errorf("image %q: mirror %s: %w", ref, host, err)
	}
	return srcRef{orig: ref, repo: repo, tag: tag, digest: digest}, nil
}

// TargetRef maps a source reference onto a target registry:
// registry.k8s.io/coredns/coredns:v1.15.0 → <Registry>/<Project>/coredns/coredns:v1.15.0
// (the source path is kept; Flatten keeps only its last element, and Docker
// Hub's implicit "library/" is part of the path: "traefik:v3" →
// <Registry>/<Project>/library/traefik:v3). A tag is kept; a digest-only
// reference stays a digest reference; "repo:tag@digest" keeps the tag.
func TargetRef(src string, t Target) (string, error) {
	if t.Registry == "" || strings.Contains(t.Registry, "/") {
		return "", fmt.Errorf("target registry %q: want host[:port]", t.Registry)
	}
	if strings.Contains(t.Project, "/") {
		return "", fmt.Errorf("target project %q: must be one path element", t.Project)
	}
	repoStr, tag, digest, err := splitRef(src)
	if err != nil {
		return "", err
	}
	repo, err := name.NewRepository(repoStr)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", src, err)
	}
	p := repo.RepositoryStr()
	if t.Flatten {
		p = path.Base(p)
	}
	out := t.Registry + "/"
	if t.Project != "" {
		out += t.Project + "/"
	}
	out += p
	if tag != "" {
		out += ":" + tag
	} else {
		out += "@" + digest
	}
	if _, err := name.ParseReference(out); err != nil {
		return "", fmt.Errorf("image %q → %q: %w", src, out, err)
	}
	return out, nil
}

func parsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
