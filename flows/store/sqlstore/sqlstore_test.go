package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	_ "modernc.org/sqlite"

	"github.com/keystep/keystep/flows"
)

func TestRebind(t *testing.T) {
	q := `SELECT a FROM t WHERE b = ? AND c > ? LIMIT ?`
	if got := (Dialect{}).rebind(q); got != q {
		t.Errorf("? dialect rewrote %q to %q", q, got)
	}
	want := `SELECT a FROM t WHERE b = $1 AND c > $2 LIMIT $3`
	if got := (Dialect{NumberedPlaceholders: true}).rebind(q); got != want {
		t.Errorf("rebind = %q, want %q", got, want)
	}
	for i := range numQueries {
		for _, text := range []string{queryText[i], queryArrayText[i]} {
			if strings.Contains(text, "'?") || strings.Contains(text, "?'") {
				t.Errorf("query %d has a ? in a string literal: %s", i, text)
			}
		}
	}
}

// TestDialectLists checks that a list of ids goes as a JSON array to the
// json_each form of a statement and as a []string to its array form, and
// that both forms take the same parameters.
func TestDialectLists(t *testing.T) {
	jsonD, arrayD := Dialect{}, Dialect{ArrayParams: true}
	for i := range numQueries {
		if queryArrayText[i] == "" {
			continue
		}
		if got := arrayD.text(i); got != queryArrayText[i] {
			t.Errorf("array dialect runs query %d as %q", i, got)
		}
		if got := jsonD.text(i); got != queryText[i] {
			t.Errorf("JSON dialect runs query %d as %q", i, got)
		}
		if a, b := strings.Count(queryText[i], "?"), strings.Count(queryArrayText[i], "?"); a != b {
			t.Errorf("query %d takes %d parameters in its JSON form, %d in its array form", i, a, b)
		}
	}
	if got := arrayD.text(qGetAccount); got != queryText[qGetAccount] {
		t.Errorf("array dialect runs a query without an array form as %q", got)
	}
	for _, c := range []struct {
		in    []string
		json  string
		array []string
	}{
		{nil, "[]", []string{}},
		{[]string{"a", `b"c`, "é"}, `["a","b\"c","é"]`, []string{"a", `b"c`, "é"}},
	} {
		if got := jsonD.list(c.in); got != c.json {
			t.Errorf("JSON list of %q = %#v, want %q", c.in, got, c.json)
		}
		if got := arrayD.list(c.in); !reflect.DeepEqual(got, c.array) {
			t.Errorf("array list of %q = %#v, want %#v", c.in, got, c.array)
		}
	}
}

func TestTimes(t *testing.T) {
	if n := unixNano(time.Time{}); n != 0 {
		t.Errorf("zero time stored as %d", n)
	}
	if got := fromUnixNano(0); !got.IsZero() {
		t.Errorf("0 read back as %v", got)
	}
	in := time.Date(2031, 2, 3, 4, 5, 6, 7, time.FixedZone("X", -5*3600))
	got := fromUnixNano(unixNano(in))
	if !got.Equal(in) || got.Location() != time.UTC {
		t.Errorf("%v read back as %v", in, got)
	}
	if got != in.UTC() {
		t.Errorf("%v read back as %#v, want == %#v", in, got, in.UTC())
	}
}

func TestMethods(t *testing.T) {
	for _, ms := range [][]flows.Method{nil, {flows.MethodPush}, {flows.MethodPush, flows.MethodQR}} {
		s, err := joinMethods(ms)
		if err != nil {
			t.Fatal(err)
		}
		if got := splitMethods(s); !reflect.DeepEqual(got, ms) {
			t.Errorf("%v stored as %q, read back as %v", ms, s, got)
		}
	}
	for _, bad := range []flows.Method{"a,b", ""} {
		if _, err := joinMethods([]flows.Method{flows.MethodPush, bad}); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("method %q: error %v, want ErrInvalid", bad, err)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(fstest.MapFS{
		"0010_c.sql":  {Data: []byte("C")},
		"0002_b.sql":  {Data: []byte("B")},
		"0001_a.sql":  {Data: []byte("A")},
		"README.md":   {Data: []byte("ignored")},
		"sub/0003.sq": {Data: []byte("ignored")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.name+"="+m.sql)
	}
	if want := []string{"0001_a.sql=A", "0002_b.sql=B", "0010_c.sql=C"}; !reflect.DeepEqual(got, want) {
		t.Errorf("migrations %v, want %v", got, want)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"duplicate version": {"0001_a.sql": {}, "1_b.sql": {}},
		"no number":         {"init.sql": {}},
		"zero":              {"0000_a.sql": {}},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);")},
		"0002_b.sql": {Data: []byte("CREATE TABLE b (x INTEGER);")},
	}
	d := Dialect{Name: "sqlite", Migrations: fsys}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	for range 2 { // the second run is a no-op
		if err := migrate(ctx, db, d); err != nil {
			t.Fatal(err)
		}
		if n := count("SELECT COUNT(*) FROM schema_migrations"); n != 2 {
			t.Errorf("%d migrations recorded, want 2", n)
		}
		if n := count("SELECT COUNT(*) FROM a"); n != 1 {
			t.Errorf("table a has %d rows, want 1 (migration 1 ran once)", n)
		}
	}
	// A failing migration leaves nothing of itself behind.
	fsys["0003_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x INTEGER); INSERT INTO nowhere VALUES (1);")}
	if err := migrate(ctx, db, d); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Errorf("bad migration: error %v, want one naming 0003_bad.sql", err)
	}
	if n := count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'c'"); n != 0 {
		t.Errorf("the failed migration's table c exists")
	}
	if n := count("SELECT COUNT(*) FROM schema_migrations"); n != 2 {
		t.Errorf("%d migrations recorded after a failure, want 2", n)
	}
}
