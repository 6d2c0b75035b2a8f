package directory

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/internal/slapdtest"
)

// benchUsers is the size of the benchmarks' directory: 100,000, or
// KEYSTEP_BENCH_DIRECTORY_USERS (CI's run-once smoke test uses fewer).
func benchUsers(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("KEYSTEP_BENCH_DIRECTORY_USERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("KEYSTEP_BENCH_DIRECTORY_USERS=%q", v)
		}
	}
	return n
}

// BenchmarkFullSync measures a full sync of a large directory from a local
// slapd once the accounts exist (the periodic sync: nothing changed, every
// entry read, mapped, hashed and compared), against ldapsearch paging
// through the same entries with the same attributes over the same StartTLS
// connection kind. Targets: at most 1.5× ldapsearch, peak Go heap under
// 150 MB. It also reports the first sync (every account created).
func BenchmarkFullSync(b *testing.B) {
	n := benchUsers(b)
	ldif := filepath.Join(b.TempDir(), "users.ldif")
	f, err := os.Create(ldif)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := slapdtest.WriteUsersLDIF(w, n, "people"); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	srv := slapdtest.Start(b, slapdtest.Options{LDIFFile: ldif, LogLevel: "none"})
	e := newSyncEnv(b, srv, func(c *SourceConfig) { c.PageSize = 1000; c.Incremental = ModeNone })

	peak := watchHeap()
	start := time.Now()
	rep := e.fullSync(SyncOptions{})
	first := time.Since(start)
	if rep.Created != n {
		b.Fatalf("first sync: %+v", rep)
	}

	ldapsearch := timeLDAPSearch(b, srv, e.src, n)
	runtime.GC()
	peak.reset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep := e.fullSync(SyncOptions{})
		if rep.Unchanged != n || rep.Changes() != 0 {
			b.Fatalf("steady sync: %+v", rep)
		}
	}
	b.StopTimer()
	perSync := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(n), "entries")
	b.ReportMetric(perSync.Seconds(), "sync-s")
	b.ReportMetric(ldapsearch.Seconds(), "ldapsearch-s")
	b.ReportMetric(perSync.Seconds()/ldapsearch.Seconds(), "x-ldapsearch")
	b.ReportMetric(float64(n)/perSync.Seconds(), "entries/s")
	b.ReportMetric(first.Seconds(), "first-sync-s")
	b.ReportMetric(float64(peak.stop())/(1<<20), "peak-heap-MB")
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
	}
}

// timeLDAPSearch pages through the source's users with OpenLDAP's
// ldapsearch, as the sync does (same filter, attributes, page size and
// StartTLS), and returns the fastest of three runs.
func timeLDAPSearch(b *testing.B, srv *slapdtest.Server, src *Source, want int) time.Duration {
	b.Helper()
	bin, err := exec.LookPath("ldapsearch")
	if err != nil {
		b.Fatalf("ldapsearch: %v (install the Debian package ldap-utils)", err)
	}
	args := []string{"-LLL", "-ZZ", "-x", "-H", srv.URL, "-D", srv.SyncDN, "-y", passwordFile(b, srv.SyncPassword),
		"-b", src.cfg.BaseDN, "-E", "pr=" + strconv.Itoa(src.cfg.PageSize) + "/noprompt", src.filter}
	args = append(args, src.mapper.attributes()...)
	best := time.Duration(0)
	out := filepath.Join(b.TempDir(), "out.ldif")
	for range 3 {
		f, err := os.Create(out) // a file, so nothing slower than ldapsearch reads its output
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+srv.CAFile)
		cmd.Stdout = f
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err = cmd.Run()
		took := time.Since(start)
		f.Close()
		if err != nil {
			b.Fatalf("ldapsearch: %v\n%s", err, stderr.String())
		}
		if n := countDNs(b, out); n != want {
			b.Fatalf("ldapsearch read %d entries, want %d", n, want)
		}
		if best == 0 || took < best {
			best = took
		}
	}
	return best
}

// countDNs counts the entries of an LDIF file.
func countDNs(b *testing.B, path string) int {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "dn:") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func passwordFile(b *testing.B, pw string) string {
	p := filepath.Join(b.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(pw), 0o600); err != nil {
		b.Fatal(err)
	}
	return p
}

// heapWatch samples the live Go heap while a benchmark runs and keeps the
// highest value.
type heapWatch struct {
	mu     sync.Mutex
	peak   uint64
	stopCh chan struct{}
	done   chan struct{}
}

func watchHeap() *heapWatch {
	h := &heapWatch{stopCh: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(h.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			h.mu.Lock()
			h.peak = max(h.peak, sample[0].Value.Uint64())
			h.mu.Unlock()
			select {
			case <-h.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapWatch) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peak = 0
}

func (h *heapWatch) stop() uint64 {
	close(h.stopCh)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}
