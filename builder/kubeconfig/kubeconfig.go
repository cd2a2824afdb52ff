// Package kubeconfig writes kubeconfig files with embedded certificates.
//
// Written by hand over yaml.v3 rather than client-go's clientcmd: clientcmd
// drags in most of apimachinery for what is a five-field document, and its
// output orders keys by map iteration in places; this one is byte-stable.
package kubeconfig

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Config is everything one kubeconfig holds: one cluster, one user, one
// context, the shape the seed builds with kubectl config set-*.
type Config struct {
	Cluster string // cluster name, e.g. "kubernetes"
	Server  string // https://10.4.7.10:7443
	User    string // e.g. "system:node:hdss7-21.host.com"
	CA      []byte // PEM
	Cert    []byte // PEM client certificate
	Key     []byte // PEM private key
}

type file struct {
	APIVersion     string         `yaml:"apiVersion"`
	Kind           string         `yaml:"kind"`
	Clusters       []namedCluster `yaml:"clusters"`
	Contexts       []namedContext `yaml:"contexts"`
	CurrentContext string         `yaml:"current-context"`
	Preferences    struct{}       `yaml:"preferences"`
	Users          []namedUser    `yaml:"users"`
}

type namedCluster struct {
	Name    string `yaml:"name"`
	Cluster struct {
		CAData string `yaml:"certificate-authority-data"`
		Server string `yaml:"server"`
	} `yaml:"cluster"`
}

type namedContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster string `yaml:"cluster"`
		User    string `yaml:"user"`
	} `yaml:"context"`
}

type namedUser struct {
	Name string `yaml:"name"`
	User struct {
		CertData string `yaml:"client-certificate-data"`
		KeyData  string `yaml:"client-key-data"`
	} `yaml:"user"`
}

// Marshal renders c. Every field is required.
func Marshal(c Config) ([]byte, error) {
	switch {
	case c.Cluster == "", c.Server == "", c.User == "":
		return nil, errors.New("kubeconfig: cluster, server and user are required")
	case len(c.CA) == 0, len(c.Cert) == 0, len(c.Key) == 0:
		return nil, fmt.Errorf("kubeconfig for %s: CA, certificate and key are required", c.User)
	}
	ctx := c.User + "@" + c.Cluster
	var f file
	f.APIVersion, f.Kind, f.CurrentContext = "v1", "Config", ctx
	var nc namedCluster
	nc.Name = c.Cluster
	nc.Cluster.CAData = base64.StdEncoding.EncodeToString(c.CA)
	nc.Cluster.Server = c.Server
	var nx namedContext
	nx.Name = ctx
	nx.Context.Cluster, nx.Context.User = c.Cluster, c.User
	var nu namedUser
	nu.Name = c.User
	nu.User.CertData = base64.StdEncoding.EncodeToString(c.Cert)
	nu.User.KeyData = base64.StdEncoding.EncodeToString(c.Key)
	f.Clusters, f.Contexts, f.Users = []namedCluster{nc}, []namedContext{nx}, []namedUser{nu}

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", c.User, err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Unmarshal reads back what Marshal wrote (for verify and tests).
func Unmarshal(data []byte) (Config, error) {
	var f file
	if err := yaml.Unmarshal(data, &f); err != nil {
		return Config{}, fmt.Errorf("kubeconfig: %w", err)
	}
	if len(f.Clusters) != 1 || len(f.Users) != 1 {
		return Config{}, errors.New("kubeconfig: want exactly one cluster and one user")
	}
	dec := func(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
	c := Config{Cluster: f.Clusters[0].Name, Server: f.Clusters[0].Cluster.Server, User: f.Users[0].Name}
	var err error
	if c.CA, err = dec(f.Clusters[0].Cluster.CAData); err != nil {
		return Config{}, fmt.Errorf("kubeconfig: certificate-authority-data: %w", err)
	}
	if c.Cert, err = dec(f.Users[0].User.CertData); err != nil {
		return Config{}, fmt.Errorf("kubeconfig: client-certificate-data: %w", err)
	}
	if c.Key, err = dec(f.Users[0].User.KeyData); err != nil {
		return Config{}, fmt.Errorf("kubeconfig: client-key-data: %w", err)
	}
	return c, nil
}
