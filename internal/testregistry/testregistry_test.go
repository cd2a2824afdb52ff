package testregistry

import (
	"net/http"
	"testing"
)

func TestStartTLSAuth(t *testing.T) {
	r := Start(t, WithAuth("alice", "s3cret"))
	client := &http.Client{Transport: r.Transport()}
	resp, err := client.Get(r.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/: got %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v2/", nil)
	req.SetBasicAuth(r.User, r.Password)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authenticated /v2/: got %d, want 200", resp.StatusCode)
	}
}

func TestStartPlain(t *testing.T) {
	r := Start(t, WithoutTLS())
	resp, err := http.Get(r.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/v2/: got %d", resp.StatusCode)
	}
}
