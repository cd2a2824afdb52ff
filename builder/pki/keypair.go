package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
)

// ensureKeyPair reuses or generates <name>.key and <name>.pub. An existing
// private key of the configured algorithm and size is kept even when its
// record is missing: replacing the service-account key invalidates every
// token, so only a broken or wrong-algorithm key is replaced. A public half
// that does not match is rewritten from the private key.
func (is *issuer) ensureKeyPair(r Request) (*KeyPair, error) {
	want := &record{
		Hosts:     []string{},
		Key:       is.keySpec(),
		Profile:   ProfileKeyPair,
		Receivers: r.Receivers,
		Purpose:   r.Purpose,
	}
	keyPath, pubPath, recPath := is.path(r.Name+".key"), is.path(r.Name+".pub"), is.path(r.Name+".json")
	privPEM, err := readOptional(keyPath)
	if err != nil {
		return nil, err
	}
	reason := "new"
	var priv crypto.Signer
	if privPEM != nil {
		priv, err = helpers.ParsePrivateKeyPEM(privPEM)
		switch {
		case err != nil:
			reason = "key unreadable"
		case !keyMatchesSpec(priv.Public(), want.Key):
			reason = "key algorithm changed"
		default:
			reason = ""
		}
	}
	issued := reason != ""
	if issued {
		k, err := (&csr.KeyRequest{A: want.Key.Algo, S: want.Key.Size}).Generate()
		if err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		priv = k.(crypto.Signer)
		if privPEM, err = marshalPrivateKey(priv); err != nil {
			return nil, err
		}
		if err := writeAtomic(keyPath, privPEM, keyMode); err != nil {
			return nil, err
		}
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if old, err := readOptional(pubPath); err != nil {
		return nil, err
	} else if !bytes.Equal(old, pubPEM) {
		if err := writeAtomic(pubPath, pubPEM, publicMode); err != nil {
			return nil, err
		}
	}
	if old, err := readRecord(recPath); err != nil || !old.sameInputs(want) || !old.sameLedger(want) {
		if err := writeAtomic(recPath, want.marshal(), publicMode); err != nil {
			return nil, err
		}
	}
	if issued {
		is.log().Info("key pair generated", "name", r.Name, "reason", reason)
	} else {
		is.log().Debug("key pair reused", "name", r.Name)
	}
	return &KeyPair{Name: r.Name, PrivatePEM: privPEM, PublicPEM: pubPEM, Issued: issued, Reason: reason}, nil
}

func marshalPrivateKey(k crypto.Signer) ([]byte, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("marshal key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	return nil, fmt.Errorf("unsupported key type %T", k)
}
