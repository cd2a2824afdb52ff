package pxe

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kubebake/kubebake/builder/spec"
)

// Secrets are what a kickstart holds that the spec does not: root's
// password hash and the authorized keys, read from where the spec says.
type Secrets struct {
	RootHash       string
	AuthorizedKeys []string
}

// cryptRE is a crypt(3) hash glibc 2.17 (CentOS 7) verifies: SHA-512 ($6$),
// SHA-256 ($5$) or MD5 ($1$), optional rounds=, salt, digest of the right
// length.
var cryptRE = regexp.MustCompile(`^\$(6\$(rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}|5\$(rounds=[0-9]{1,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43}|1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22})$`)

// ReadSecrets reads the root password hash (pxe.rootPasswordHashFile,
// relative to the spec's directory, or pxe.rootPasswordHashEnv through
// lookup) and the authorized keys file. Errors name the source, never the
// value.
func ReadSecrets(s *spec.Spec, lookup func(string) (string, bool)) (Secrets, error) {
	x := s.PXE
	if x == nil {
		return Secrets{}, ErrNoPXE
	}
	var sec Secrets
	var raw, from string
	switch {
	case x.RootPasswordHashFile != "":
		p := relToSpec(s, x.RootPasswordHashFile)
		from = "pxe.rootPasswordHashFile " + p
		b, err := os.ReadFile(p)
		if err != nil {
			return sec, fmt.Errorf("%w: %s: %w", ErrRootHash, from, err)
		}
		raw = string(b)
	case x.RootPasswordHashEnv != "":
		from = "pxe.rootPasswordHashEnv $" + x.RootPasswordHashEnv
		v, ok := lookup(x.RootPasswordHashEnv)
		if !ok {
			return sec, fmt.Errorf("%w: %s is not set; export it with the output of `openssl passwd -6`", ErrRootHash, from)
		}
		raw = v
	default:
		return sec, fmt.Errorf("%w: the spec names no source", ErrRootHash)
	}
	h := strings.TrimRight(raw, "\r\n")
	if !cryptRE.MatchString(h) {
		return sec, fmt.Errorf("%w: %s does not hold a crypt(3) hash ($6$…, $5$… or $1$… on one line, as `openssl passwd -6` prints); the value is not shown", ErrRootHash, from)
	}
	sec.RootHash = h
	sec.AuthorizedKeys = append(sec.AuthorizedKeys, x.SSHAuthorizedKeys...)
	if x.SSHAuthorizedKeysFile != "" {
		p := relToSpec(s, x.SSHAuthorizedKeysFile)
		b, err := os.ReadFile(p)
		if err != nil {
			return sec, fmt.Errorf("pxe.sshAuthorizedKeysFile: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if msg := spec.CheckSSHPublicKey(l); msg != "" {
				return sec, fmt.Errorf("pxe.sshAuthorizedKeysFile %s:%d: %s", p, n, msg)
			}
			sec.AuthorizedKeys = append(sec.AuthorizedKeys, l)
		}
	}
	return sec, nil
}

func relToSpec(s *spec.Spec, p string) string {
	if filepath.IsAbs(p) || s.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(s.File), p)
}
