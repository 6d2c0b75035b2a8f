package samlidp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/samlidp/samltest"
)

// TestSPMetadataRefresh: metadata from a URL is fetched again on schedule;
// a new SP key is picked up, and a failed fetch keeps the last good copy.
func TestSPMetadataRefresh(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := samltest.NewSP(t, samltest.Options{BaseURL: "https://sp.example.com"})
	second := samltest.NewSP(t, samltest.Options{BaseURL: "https://sp.example.com"}) // same entity, new key
	var serving atomic.Value
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	serving.Store(read(first.MetadataFile))
	var fetches atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		b := serving.Load().([]byte)
		if len(b) == 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(b)
	}))
	defer ts.Close()

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := flows.New(st, flows.Config{Origin: "https://keystep.example.com",
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-test-code-key-0123456789abcdef")}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	p, err := New(Options{Flows: svc, PublicURL: "https://keystep.example.com", Secret: []byte("keystep-test-code-key-0123456789abcdef"),
		ServiceProviders: []SPConfig{{ID: "sp", EntityID: first.EntityID, MetadataURL: ts.URL + "/metadata", Refresh: time.Hour}},
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)), HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	loads := make(chan error, 10)
	p.registry.onLoad = func(_ *sp, err error) { loads <- err }
	tick := make(chan time.Time)
	var mu sync.Mutex
	var waits []time.Duration
	p.startWith(ctx, func(d time.Duration) <-chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return tick
	})
	if err := <-loads; err != nil {
		t.Fatalf("first load: %v", err)
	}
	signingCert := func() string {
		m, err := p.registry.GetServiceProvider(nil, first.EntityID)
		if err != nil {
			t.Fatal(err)
		}
		return m.SPSSODescriptors[0].KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data
	}
	before := signingCert()

	serving.Store(read(second.MetadataFile))
	tick <- time.Now()
	if err := <-loads; err != nil {
		t.Fatalf("refresh: %v", err)
	}
	after := signingCert()
	if after == before {
		t.Error("the refreshed metadata still has the old key")
	}

	serving.Store([]byte{}) // the SP's server is down
	tick <- time.Now()
	if err := <-loads; err == nil {
		t.Fatal("a failed fetch reported success")
	}
	if signingCert() != after {
		t.Error("a failed fetch dropped the last good metadata")
	}
	tick <- time.Now() // the loop goes on after a failure
	if err := <-loads; err == nil {
		t.Fatal("a failed fetch reported success")
	}
	if fetches.Load() != 4 {
		t.Errorf("%d fetches, want 4", fetches.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if waits[0] != time.Hour || waits[len(waits)-1] != time.Minute {
		t.Errorf("waits %v: an hour normally, a minute after a failure", waits)
	}
}
