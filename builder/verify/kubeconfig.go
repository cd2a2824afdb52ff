package verify

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
)

// kubeconfig holds what verify reads from a kubeconfig: the embedded
// certificate data, in file order.
//
// This is a line scanner, not a YAML parser: the module's YAML library is
// not used here so the package stays standard-library only. It finds
// "certificate-authority-data", "client-certificate-data",
// "client-key-data" and "token" keys at any indentation (also after a
// "- " list marker), with plain, single- or double-quoted values on the
// same line. That is how builder/kubeconfig and kubectl write them; block
// scalars or values folded over lines are not understood and are reported
// as undecodable.
type kubeconfig struct {
	ca, cert, key []field
	token         bool
}

// field is one base64 value, decoded, with its 1-based line.
type field struct {
	line int
	data []byte
	err  error
}

func parseKubeconfig(b []byte) kubeconfig {
	var k kubeconfig
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxSmall)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		l = strings.TrimSpace(strings.TrimPrefix(l, "- "))
		key, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
			val = val[1 : len(val)-1]
		}
		var dst *[]field
		switch key {
		case "certificate-authority-data":
			dst = &k.ca
		case "client-certificate-data":
			dst = &k.cert
		case "client-key-data":
			dst = &k.key
		case "token":
			k.token = val != ""
			continue
		default:
			continue
		}
		data, err := base64.StdEncoding.DecodeString(val)
		*dst = append(*dst, field{line: n, data: data, err: err})
	}
	return k
}

// secret reports whether the kubeconfig carries a credential.
func (k kubeconfig) secret() bool { return len(k.key) > 0 || k.token }
