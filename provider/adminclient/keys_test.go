package adminclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

// ring is a key ring with one key that a rotation replaces.
type ring struct{ id string }

func (r *ring) SigningKeys(context.Context) ([]api.SigningKey, error) {
	return []api.SigningKey{{ID: r.id, Alg: "RS256", Signing: true}}, nil
}

func (r *ring) RotateKeys(ctx context.Context) ([]api.SigningKey, error) {
	r.id += "'"
	return r.SigningKeys(ctx)
}

// TestKeyCalls lists the keys of two uses and rotates those of one.
func TestKeyCalls(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const token = "client-test-admin-token-0123456789"
	srv := httptest.NewServer(nil)
	defer srv.Close()
	svc, err := flows.New(st, flows.Config{Origin: srv.URL, CodeConfig: flows.CodeConfig{CodeKey: []byte("client-test-code-key-0123456789abcdef")}},
		flows.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	p, err := provider.New(provider.Options{Flows: svc, AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	p.MountKeys("oidc", &ring{id: "o"})
	p.MountKeys("saml", &ring{id: "s"})
	srv.Config.Handler = p.Handler()
	c, err := adminclient.New(srv.URL, token, adminclient.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	l, err := c.SigningKeys(ctx)
	if err != nil || len(l.Keys) != 2 || l.Keys[0].Use != "oidc" || l.Keys[1].Use != "saml" {
		t.Fatalf("SigningKeys = %+v, %v", l, err)
	}
	if _, err := c.RotateKeys(ctx, ""); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("RotateKeys without a use, two mounted: %v", err)
	}
	l, err = c.RotateKeys(ctx, "saml")
	if err != nil || len(l.Keys) != 1 || l.Keys[0].ID != "s'" || l.Keys[0].Use != "saml" {
		t.Fatalf("RotateKeys(saml) = %+v, %v", l, err)
	}
}
