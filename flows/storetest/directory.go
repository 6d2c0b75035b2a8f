package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// The conformance tests of the directory tables: links of accounts to
// directory entries, staged entries and each source's state.

var directoryFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"DirectoryLinkRoundTrip", testDirectoryLinkRoundTrip},
	{"DirectoryLinksBatch", testDirectoryLinksBatch},
	{"PutDirectoryLinkUpsert", testPutDirectoryLinkUpsert},
	{"PutDirectoryLinkErrors", testPutDirectoryLinkErrors},
	{"ListUnseenDirectoryLinks", testListUnseenDirectoryLinks},
	{"StagedDirectoryEntries", testStagedDirectoryEntries},
	{"DirectoryState", testDirectoryState},
	{"PurgeDeletesDirectoryLink", testPurgeDeletesDirectoryLink},
}

var directoryTransactional = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"DirectoryLinkErrorsKeepTx", testTxDirectoryLinkErrorsKeepTx},
	{"DirectoryRollback", testTxDirectoryRollback},
}

var directoryConcurrent = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"PutDirectoryLink", testConcurrentPutDirectoryLink},
}

// The sources the tests sync from.
const (
	srcLDAP = "corp-ldap"
	srcAD   = "corp-ad"
)

// --- fixtures ---

// dirLink is the link of entry ext of source to accountID, seen by run-0
// and updated at t0.
func dirLink(source, ext, accountID string) flows.DirectoryLink {
	return flows.DirectoryLink{
		Source:     source,
		ExternalID: ext,
		AccountID:  accountID,
		DN:         "uid=" + ext + ",ou=people,dc=example,dc=com",
		Hash:       []byte("hash-of-" + ext),
		SeenRun:    "run-0",
		UpdatedAt:  t0,
	}
}

// dirEntry is a suspended entry with every field set.
func dirEntry(ext string) flows.DirectoryEntry {
	return flows.DirectoryEntry{
		ExternalID:  ext,
		DN:          "uid=" + ext + ",ou=people,dc=example,dc=com",
		Username:    "user-" + ext,
		Email:       ext + "@example.com",
		Phone:       "+33 1 23 45 67 89",
		DisplayName: "User " + ext,
		State:       flows.AccountSuspended,
		Reason:      "disabled in the directory",
	}
}

// linked creates account id and links it to entry ext of source.
func linked(t *testing.T, s flows.Tx, source, ext, id string) flows.DirectoryLink {
	t.Helper()
	ctx := t.Context()
	must(t, "create account "+id, s.CreateAccount(ctx, account(id, id)))
	l := dirLink(source, ext, id)
	must(t, "link "+id+" to "+ext, s.PutDirectoryLink(ctx, l))
	return l
}

// sortedLinks returns the links ordered by source, then external id.
func sortedLinks(ls []flows.DirectoryLink) []flows.DirectoryLink {
	out := slices.Clone(ls)
	slices.SortFunc(out, func(a, b flows.DirectoryLink) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.ExternalID, b.ExternalID)
	})
	if out == nil {
		out = []flows.DirectoryLink{}
	}
	return out
}

func linkIDs(ls []flows.DirectoryLink) []string {
	return ids(ls, func(l flows.DirectoryLink) string { return l.ExternalID })
}

func entryIDs(es []flows.DirectoryEntry) []string {
	return ids(es, func(e flows.DirectoryEntry) string { return e.ExternalID })
}

// --- links ---

func testDirectoryLinkRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	for _, id := range []string{"acc-1", "acc-2", "acc-3"} {
		must(t, "create "+id, s.CreateAccount(ctx, account(id, id)))
	}
	full := dirLink(srcLDAP, "ext-1", "acc-1")
	full.UpdatedAt = time.Date(2025, 5, 31, 9, 30, 0, 987654321, time.FixedZone("CEST", 2*3600))
	// Empty fields and byte slices read back empty and nil.
	bare := flows.DirectoryLink{Source: srcLDAP, ExternalID: "ext-2", AccountID: "acc-2", Hash: []byte{}}
	// Another source's entry may have the same id.
	other := dirLink(srcAD, "ext-1", "acc-3")
	for _, l := range []flows.DirectoryLink{full, bare, other} {
		must(t, "put "+l.Source+"/"+l.ExternalID, s.PutDirectoryLink(ctx, l))
	}
	wantFull := full
	wantFull.UpdatedAt = full.UpdatedAt.UTC()
	wantBare := bare
	wantBare.Hash = nil

	got, err := s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-2", "nobody", "ext-1"})
	must(t, "get links", err)
	wantEqual(t, "links of "+srcLDAP, sortedLinks(got), []flows.DirectoryLink{wantFull, wantBare})
	got, err = s.GetDirectoryLinks(ctx, srcAD, []string{"ext-1", "ext-2"})
	must(t, "get links", err)
	wantEqual(t, "links of "+srcAD, sortedLinks(got), []flows.DirectoryLink{other})
	for _, list := range [][]string{nil, {}, {"nobody"}} {
		got, err = s.GetDirectoryLinks(ctx, srcLDAP, list)
		must(t, "get no links", err)
		if len(got) != 0 {
			t.Errorf("GetDirectoryLinks(%q) = %+v, want none", list, got)
		}
	}
	got, err = s.GetDirectoryLinks(ctx, "no-such-source", []string{"ext-1"})
	must(t, "get links of an unknown source", err)
	if len(got) != 0 {
		t.Errorf("links of an unknown source: %+v, want none", got)
	}

	byAcc, err := s.GetDirectoryLinkByAccount(ctx, "acc-1")
	must(t, "get by account", err)
	wantEqual(t, "link of acc-1", byAcc, wantFull)
	if byAcc.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt in %v, want UTC", byAcc.UpdatedAt.Location())
	}
	byAcc, err = s.GetDirectoryLinkByAccount(ctx, "acc-2")
	must(t, "get by account", err)
	wantEqual(t, "link of acc-2", byAcc, wantBare)
}

// testDirectoryLinksBatch reads and marks more ids at once than one
// statement takes, with the links spread over all of them.
func testDirectoryLinksBatch(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	const n = 2300
	var all, even []string
	for i := range n {
		ext := fmt.Sprintf("ext-%05d", i)
		all = append(all, ext)
		if i%2 == 0 {
			even = append(even, ext)
		}
	}
	for _, ext := range even {
		linked(t, s, srcLDAP, ext, "acc-"+ext)
	}
	// Another source's entry with a requested id is neither read nor marked.
	other := linked(t, s, srcAD, "ext-00000", "acc-other")

	// Reversed, with duplicates: a page may come in any order.
	req := slices.Clone(all)
	slices.Reverse(req)
	req = append(req, "ext-00000", "ext-02298", "ext-01000")
	got, err := s.GetDirectoryLinks(ctx, srcLDAP, req)
	must(t, "get links", err)
	wantEqual(t, fmt.Sprintf("links among %d ids", len(req)), linkIDs(sortedLinks(got)), even)
	for _, l := range got {
		if l.AccountID != "acc-"+l.ExternalID || l.SeenRun != "run-0" {
			t.Errorf("link %+v, want account acc-%s seen by run-0", l, l.ExternalID)
			break
		}
	}

	must(t, "mark every id seen by run-1", s.MarkDirectorySeen(ctx, srcLDAP, "run-1", req))
	got, err = s.GetDirectoryLinks(ctx, srcLDAP, all)
	must(t, "get links", err)
	if len(got) != len(even) {
		t.Errorf("%d links after marking, want %d", len(got), len(even))
	}
	for _, l := range got {
		if l.SeenRun != "run-1" {
			t.Errorf("link %s seen by %q after marking, want run-1", l.ExternalID, l.SeenRun)
		}
	}
	unseen, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-1", "", 0)
	must(t, "list unseen", err)
	wantEqual(t, "links unseen by run-1", linkIDs(unseen), []string{})
	otherNow, err := s.GetDirectoryLinks(ctx, srcAD, []string{"ext-00000"})
	must(t, "get other source's link", err)
	wantEqual(t, "other source's link after marking", otherNow, []flows.DirectoryLink{other})

	// run-2 sees the first 1,500 ids only.
	must(t, "mark the first ids seen by run-2", s.MarkDirectorySeen(ctx, srcLDAP, "run-2", all[:1500]))
	var wantUnseen []string
	for _, ext := range even {
		if ext >= "ext-01500" {
			wantUnseen = append(wantUnseen, ext)
		}
	}
	unseen, err = s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-2", "", 0)
	must(t, "list unseen", err)
	wantEqual(t, "links unseen by run-2", linkIDs(unseen), wantUnseen)
	n2, err := s.CountDirectoryLinks(ctx, srcLDAP)
	must(t, "count", err)
	if n2 != len(even) {
		t.Errorf("CountDirectoryLinks = %d, want %d", n2, len(even))
	}
}

func testPutDirectoryLinkUpsert(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	first := linked(t, s, srcLDAP, "ext-1", "acc-1")
	must(t, "create acc-2", s.CreateAccount(ctx, account("acc-2", "acc-2")))

	// The same entry again replaces its link.
	upd := first
	upd.DN = "uid=renamed,ou=staff,dc=example,dc=com"
	upd.Hash = []byte("new hash")
	upd.SeenRun = "run-7"
	upd.UpdatedAt = t0.Add(time.Hour + time.Nanosecond)
	must(t, "put again", s.PutDirectoryLink(ctx, upd))
	got, err := s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-1"})
	must(t, "get", err)
	wantEqual(t, "replaced link", got, []flows.DirectoryLink{upd})
	n, err := s.CountDirectoryLinks(ctx, srcLDAP)
	must(t, "count", err)
	if n != 1 {
		t.Errorf("%d links after an upsert, want 1", n)
	}

	// The entry moves to another account: the first one has no link left
	// and may take another entry.
	moved := upd
	moved.AccountID = "acc-2"
	must(t, "move the entry to acc-2", s.PutDirectoryLink(ctx, moved))
	_, err = s.GetDirectoryLinkByAccount(ctx, "acc-1")
	wantErr(t, "link of acc-1 after its entry moved", err, flows.ErrNotFound)
	byAcc, err := s.GetDirectoryLinkByAccount(ctx, "acc-2")
	must(t, "link of acc-2", err)
	wantEqual(t, "link of acc-2", byAcc, moved)
	must(t, "link acc-1 to another entry", s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-2", "acc-1")))
	got, err = s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-1", "ext-2"})
	must(t, "get", err)
	wantEqual(t, "links", sortedLinks(got), []flows.DirectoryLink{moved, dirLink(srcLDAP, "ext-2", "acc-1")})
}

func testPutDirectoryLinkErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	l := linked(t, s, srcLDAP, "ext-1", "acc-1")
	must(t, "create acc-2", s.CreateAccount(ctx, account("acc-2", "acc-2")))

	// acc-1 is linked: to no other entry, of any source.
	wantErr(t, "link acc-1 to a second entry", s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-2", "acc-1")), flows.ErrConflict)
	wantErr(t, "link acc-1 to another source's entry", s.PutDirectoryLink(ctx, dirLink(srcAD, "ext-1", "acc-1")), flows.ErrConflict)
	// Moving ext-3 onto acc-1 is a conflict too.
	must(t, "link acc-2", s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-3", "acc-2")))
	wantErr(t, "move ext-3 onto acc-1", s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-3", "acc-1")), flows.ErrConflict)
	wantErr(t, "link an unknown account", s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-4", "nobody")), flows.ErrNotFound)
	for _, bad := range []flows.DirectoryLink{
		dirLink("", "ext-5", "acc-2"), dirLink(srcLDAP, "", "acc-2"), dirLink(srcLDAP, "ext-5", ""),
	} {
		wantErr(t, fmt.Sprintf("put %+v", bad), s.PutDirectoryLink(ctx, bad), flows.ErrInvalid)
	}
	// The same link again is no conflict.
	must(t, "put acc-1's link again", s.PutDirectoryLink(ctx, l))

	got, err := s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-1", "ext-2", "ext-3", "ext-4", "ext-5"})
	must(t, "get", err)
	wantEqual(t, "links after refused puts", sortedLinks(got), []flows.DirectoryLink{l, dirLink(srcLDAP, "ext-3", "acc-2")})
	got, err = s.GetDirectoryLinks(ctx, srcAD, []string{"ext-1"})
	must(t, "get", err)
	if len(got) != 0 {
		t.Errorf("a refused link of %s was stored: %+v", srcAD, got)
	}

	_, err = s.GetDirectoryLinkByAccount(ctx, "nobody")
	wantErr(t, "link of an unknown account", err, flows.ErrNotFound)
	must(t, "create acc-3", s.CreateAccount(ctx, account("acc-3", "acc-3")))
	_, err = s.GetDirectoryLinkByAccount(ctx, "acc-3")
	wantErr(t, "link of an account without one", err, flows.ErrNotFound)
}

func testListUnseenDirectoryLinks(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	for i := 1; i <= 8; i++ {
		l := dirLink(srcLDAP, fmt.Sprintf("ext-%02d", i), fmt.Sprintf("u%02d", i))
		l.SeenRun = "run-1"
		if i == 8 {
			l.SeenRun = "run-2" // put by run-2 itself: seen
		}
		must(t, "create "+l.AccountID, s.CreateAccount(ctx, account(l.AccountID, l.AccountID)))
		must(t, "link "+l.AccountID, s.PutDirectoryLink(ctx, l))
	}
	linked(t, s, srcAD, "ext-01", "o01")
	must(t, "remove u03", s.SetAccountState(ctx, "u03", flows.AccountActive, flows.AccountRemoved, flows.SourceDirectory, "gone", t0))
	must(t, "suspend u05", s.SetAccountState(ctx, "u05", flows.AccountActive, flows.AccountSuspended, flows.SourceDirectory, "disabled", t0))

	must(t, "mark seen", s.MarkDirectorySeen(ctx, srcLDAP, "run-2", []string{"ext-02", "ext-06", "ext-99"}))
	wantErr(t, "mark seen by no run", s.MarkDirectorySeen(ctx, srcLDAP, "", []string{"ext-01"}), flows.ErrInvalid)
	must(t, "mark no id seen", s.MarkDirectorySeen(ctx, srcLDAP, "run-2", nil))

	// Unseen: not seen by run-2 and not removed (ext-03), suspended or not.
	all, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-2", "", 0)
	must(t, "list unseen", err)
	wantEqual(t, "unseen by run-2", linkIDs(all), []string{"ext-01", "ext-04", "ext-05", "ext-07"})
	if len(all) > 0 {
		want := dirLink(srcLDAP, "ext-01", "u01")
		want.SeenRun = "run-1"
		wantEqual(t, "first unseen link", all[0], want)
	}
	var pages [][]string
	after := ""
	for range 10 {
		page, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-2", after, 3)
		must(t, "list a page", err)
		pages = append(pages, linkIDs(page))
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ExternalID
	}
	wantEqual(t, "pages of 3", pages, [][]string{{"ext-01", "ext-04", "ext-05"}, {"ext-07"}, {}})
	page, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-2", "ext-04", 1)
	must(t, "list after ext-04", err)
	wantEqual(t, "one after ext-04", linkIDs(page), []string{"ext-05"})

	// "Unseen by run-1" is every link another run saw last.
	byRun1, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-1", "", 0)
	must(t, "list unseen by run-1", err)
	wantEqual(t, "unseen by run-1", linkIDs(byRun1), []string{"ext-02", "ext-06", "ext-08"})
	none, err := s.ListUnseenDirectoryLinks(ctx, "no-such-source", "run-2", "", 0)
	must(t, "list unseen of an unknown source", err)
	wantEqual(t, "unseen of an unknown source", linkIDs(none), []string{})
	_, err = s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-2", "", -1)
	wantErr(t, "negative limit", err, flows.ErrInvalid)

	for src, want := range map[string]int{srcLDAP: 7, srcAD: 1, "no-such-source": 0} {
		n, err := s.CountDirectoryLinks(ctx, src)
		must(t, "count", err)
		if n != want {
			t.Errorf("CountDirectoryLinks(%s) = %d, want %d (removed accounts left out)", src, n, want)
		}
	}
	// The removed account keeps its link until it is purged.
	l, err := s.GetDirectoryLinkByAccount(ctx, "u03")
	must(t, "link of the removed account", err)
	if l.ExternalID != "ext-03" {
		t.Errorf("link of u03: %+v, want ext-03", l)
	}
}

// --- staged entries ---

func testStagedDirectoryEntries(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	// More entries than one statement takes, with a duplicate: the last of
	// an id wins, in one call or over two.
	var batch []flows.DirectoryEntry
	for i := range 1100 {
		batch = append(batch, dirEntry(fmt.Sprintf("ext-%05d", i)))
	}
	bare := flows.DirectoryEntry{ExternalID: "ext-00001", Username: "bare", State: flows.AccountActive}
	batch = append(batch, bare)
	must(t, "stage", s.StageDirectoryEntries(ctx, srcLDAP, "run-1", batch))
	later := dirEntry("ext-01099")
	later.State, later.Reason, later.Email = flows.AccountActive, "", "new@example.com"
	must(t, "stage again", s.StageDirectoryEntries(ctx, srcLDAP, "run-1", []flows.DirectoryEntry{later}))
	must(t, "stage nothing", s.StageDirectoryEntries(ctx, srcLDAP, "run-1", nil))
	must(t, "stage run-2", s.StageDirectoryEntries(ctx, srcLDAP, "run-2", []flows.DirectoryEntry{dirEntry("ext-00005")}))
	must(t, "stage another source", s.StageDirectoryEntries(ctx, srcAD, "run-1", []flows.DirectoryEntry{dirEntry("ext-00006")}))

	want := slices.Clone(batch[:1100])
	want[1], want[1099] = bare, later
	var got []flows.DirectoryEntry
	after := ""
	for range 10 {
		page, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-1", after, 400)
		must(t, "list a page", err)
		if len(page) == 0 {
			break
		}
		if len(page) > 400 {
			t.Fatalf("a page of %d entries, want at most 400", len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1].ExternalID
	}
	if !slices.Equal(entryIDs(got), entryIDs(want)) {
		t.Errorf("staged ids: %d, want %d: first %v", len(got), len(want), entryIDs(got)[:min(3, len(got))])
	} else {
		wantEqual(t, "staged entries", got, want)
	}
	all, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-1", "", 0)
	must(t, "list all", err)
	if len(all) != 1100 {
		t.Errorf("%d entries staged without limit, want 1100", len(all))
	}
	run2, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-2", "", 0)
	must(t, "list run-2", err)
	wantEqual(t, "run-2", run2, []flows.DirectoryEntry{dirEntry("ext-00005")})

	// Two of one id close together (in one statement) keep the last too.
	x2 := dirEntry("x")
	x2.DisplayName = "X, second"
	must(t, "stage a duplicate", s.StageDirectoryEntries(ctx, srcLDAP, "run-5",
		[]flows.DirectoryEntry{dirEntry("x"), dirEntry("y"), x2, dirEntry("w")}))
	run5, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-5", "", 0)
	must(t, "list run-5", err)
	wantEqual(t, "run-5", run5, []flows.DirectoryEntry{dirEntry("w"), x2, dirEntry("y")})

	// Ids sort by their bytes on every engine.
	odd := []flows.DirectoryEntry{dirEntry("ébène"), dirEntry("alpha"), dirEntry("Zulu"), dirEntry("{A0B1-c2}")}
	must(t, "stage odd ids", s.StageDirectoryEntries(ctx, srcLDAP, "run-3", odd))
	run3, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-3", "", 0)
	must(t, "list run-3", err)
	wantEqual(t, "order of odd ids", entryIDs(run3), []string{"Zulu", "alpha", "{A0B1-c2}", "ébène"})

	wantErr(t, "stage an entry without id",
		s.StageDirectoryEntries(ctx, srcLDAP, "run-4", []flows.DirectoryEntry{dirEntry("ext-1"), {DN: "cn=x"}}), flows.ErrInvalid)
	wantErr(t, "stage without a run", s.StageDirectoryEntries(ctx, srcLDAP, "", batch[:1]), flows.ErrInvalid)
	run4, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-4", "", 0)
	must(t, "list run-4", err)
	wantEqual(t, "entries of a refused staging", entryIDs(run4), []string{})
	_, err = s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-1", "", -1)
	wantErr(t, "negative limit", err, flows.ErrInvalid)

	must(t, "clear", s.ClearStagedDirectoryEntries(ctx, srcLDAP))
	for _, run := range []string{"run-1", "run-2", "run-3"} {
		left, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, run, "", 0)
		must(t, "list after clearing", err)
		wantEqual(t, run+" after clearing", entryIDs(left), []string{})
	}
	kept, err := s.ListStagedDirectoryEntries(ctx, srcAD, "run-1", "", 0)
	must(t, "list the other source", err)
	wantEqual(t, "other source's entries after clearing", kept, []flows.DirectoryEntry{dirEntry("ext-00006")})
}

// --- state ---

func testDirectoryState(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	st, err := s.GetDirectoryState(ctx, srcLDAP)
	must(t, "get a state never put", err)
	wantEqual(t, "state never put", st, flows.DirectoryState{Source: srcLDAP})
	list, err := s.ListDirectoryStates(ctx)
	must(t, "list", err)
	if len(list) != 0 {
		t.Errorf("%d states listed in an empty store", len(list))
	}

	full := flows.DirectoryState{
		Source:      srcLDAP,
		Cookie:      []byte{0x00, 0xff, 'c', 'o', 'o', 'k', 'i', 'e', 0x00},
		CookieScope: "openldap|dc=example,dc=com|(objectClass=person)",
		Status:      []byte(`{"phase":"idle","last_full":"2025-06-01T12:00:00Z"}`),
		UpdatedAt:   time.Date(2025, 5, 31, 9, 30, 0, 987654321, time.FixedZone("CEST", 2*3600)),
	}
	must(t, "put", s.PutDirectoryState(ctx, full))
	want := full
	want.UpdatedAt = full.UpdatedAt.UTC()
	st, err = s.GetDirectoryState(ctx, srcLDAP)
	must(t, "get", err)
	wantEqual(t, "state read back", st, want)
	if st.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt in %v, want UTC", st.UpdatedAt.Location())
	}

	// Put replaces: an empty cookie reads back nil.
	repl := flows.DirectoryState{Source: srcLDAP, Cookie: []byte{}, CookieScope: "", Status: []byte(`{"phase":"full"}`),
		UpdatedAt: t0.Add(time.Nanosecond)}
	must(t, "replace", s.PutDirectoryState(ctx, repl))
	wantRepl := repl
	wantRepl.Cookie = nil
	st, err = s.GetDirectoryState(ctx, srcLDAP)
	must(t, "get", err)
	wantEqual(t, "replaced state", st, wantRepl)

	ad := flows.DirectoryState{Source: srcAD, Cookie: []byte("dirsync"), CookieScope: "ad|dc=corp", UpdatedAt: t0}
	must(t, "put "+srcAD, s.PutDirectoryState(ctx, ad))
	list, err = s.ListDirectoryStates(ctx)
	must(t, "list", err)
	wantEqual(t, "states by source", list, []flows.DirectoryState{ad, wantRepl})
	wantErr(t, "put a state without source", s.PutDirectoryState(ctx, flows.DirectoryState{Cookie: []byte("x")}), flows.ErrInvalid)
}

// --- purge ---

func testPurgeDeletesDirectoryLink(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	for _, c := range []struct {
		id      string
		state   flows.AccountState
		changed time.Time
	}{
		{"gone", flows.AccountRemoved, t0.Add(-48 * time.Hour)},
		{"recent", flows.AccountRemoved, t0.Add(-time.Hour)},
		{"active", flows.AccountActive, t0.Add(-100 * time.Hour)},
	} {
		a := account(c.id, c.id)
		a.State, a.StateChangedAt = c.state, c.changed
		must(t, "create "+c.id, s.CreateAccount(ctx, a))
		must(t, "link "+c.id, s.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-"+c.id, c.id)))
	}
	purged, err := s.PurgeRemovedAccounts(ctx, t0.Add(-24*time.Hour))
	must(t, "purge", err)
	wantEqual(t, "purged", nonNil(purged), []string{"gone"})

	_, err = s.GetDirectoryLinkByAccount(ctx, "gone")
	wantErr(t, "link of the purged account", err, flows.ErrNotFound)
	got, err := s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-gone", "ext-recent", "ext-active"})
	must(t, "get", err)
	wantEqual(t, "links after the purge", linkIDs(sortedLinks(got)), []string{"ext-active", "ext-recent"})
	unseen, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-9", "", 0)
	must(t, "list unseen", err)
	wantEqual(t, "unseen after the purge", linkIDs(unseen), []string{"ext-active"})
	// The entry is free for a new account.
	linked(t, s, srcLDAP, "ext-gone", "back")
	n, err := s.CountDirectoryLinks(ctx, srcLDAP)
	must(t, "count", err)
	if n != 2 {
		t.Errorf("CountDirectoryLinks = %d, want 2 (active, back)", n)
	}
}

// --- transactions ---

// testTxDirectoryLinkErrorsKeepTx checks that a refused link (conflict,
// unknown account) leaves the transaction usable: on PostgreSQL a
// constraint violation would abort it.
func testTxDirectoryLinkErrorsKeepTx(t *testing.T, s flows.Store) {
	ctx := t.Context()
	err := s.InTx(ctx, func(tx flows.Tx) error {
		for _, id := range []string{"acc-1", "acc-2"} {
			if err := tx.CreateAccount(ctx, account(id, id)); err != nil {
				return err
			}
		}
		if err := tx.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-1", "acc-1")); err != nil {
			return err
		}
		wantErr(t, "conflicting link", tx.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-2", "acc-1")), flows.ErrConflict)
		wantErr(t, "link of an unknown account", tx.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-3", "nobody")), flows.ErrNotFound)
		return tx.PutDirectoryLink(ctx, dirLink(srcLDAP, "ext-2", "acc-2"))
	})
	must(t, "InTx", err)
	got, err := s.GetDirectoryLinks(ctx, srcLDAP, []string{"ext-1", "ext-2", "ext-3"})
	must(t, "get", err)
	wantEqual(t, "committed links", sortedLinks(got),
		[]flows.DirectoryLink{dirLink(srcLDAP, "ext-1", "acc-1"), dirLink(srcLDAP, "ext-2", "acc-2")})
}

// testTxDirectoryRollback checks that every directory write, batched ones
// included, rolls back with its transaction.
func testTxDirectoryRollback(t *testing.T, s flows.Store) {
	ctx := t.Context()
	var exts []string
	err := s.InTx(ctx, func(tx flows.Tx) error {
		for i := range 1200 {
			ext := fmt.Sprintf("ext-%05d", i)
			exts = append(exts, ext)
			if err := tx.CreateAccount(ctx, account("acc-"+ext, "acc-"+ext)); err != nil {
				return err
			}
			if err := tx.PutDirectoryLink(ctx, dirLink(srcLDAP, ext, "acc-"+ext)); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, "create links", err)
	var entries []flows.DirectoryEntry
	for _, ext := range exts {
		entries = append(entries, dirEntry(ext))
	}
	moved := dirLink(srcLDAP, "ext-00000", "acc-ext-00000")
	moved.DN = "uid=moved,ou=gone,dc=example,dc=com"
	err = s.InTx(ctx, func(tx flows.Tx) error {
		steps := []func() error{
			func() error { return tx.PutDirectoryLink(ctx, moved) },
			func() error { return tx.MarkDirectorySeen(ctx, srcLDAP, "run-1", exts) },
			func() error { return tx.StageDirectoryEntries(ctx, srcLDAP, "run-1", entries) },
			func() error {
				return tx.PutDirectoryState(ctx, flows.DirectoryState{Source: srcLDAP, Cookie: []byte("c"), UpdatedAt: t0})
			},
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		unseen, err := tx.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-1", "", 0)
		if err != nil {
			return err
		}
		if len(unseen) != 0 {
			t.Errorf("inside the transaction %d links are unseen by run-1, want 0", len(unseen))
		}
		return errRollback
	})
	wantErr(t, "InTx", err, errRollback)
	unseen, err := s.ListUnseenDirectoryLinks(ctx, srcLDAP, "run-1", "", 0)
	must(t, "list unseen", err)
	if len(unseen) != len(exts) {
		t.Errorf("after a rollback %d links are unseen by run-1, want %d", len(unseen), len(exts))
	}
	l, err := s.GetDirectoryLinkByAccount(ctx, "acc-ext-00000")
	must(t, "get link", err)
	wantEqual(t, "link after a rollback", l, dirLink(srcLDAP, "ext-00000", "acc-ext-00000"))
	staged, err := s.ListStagedDirectoryEntries(ctx, srcLDAP, "run-1", "", 0)
	must(t, "list staged", err)
	if len(staged) != 0 {
		t.Errorf("after a rollback %d entries are staged, want 0", len(staged))
	}
	st, err := s.GetDirectoryState(ctx, srcLDAP)
	must(t, "get state", err)
	wantEqual(t, "state after a rollback", st, flows.DirectoryState{Source: srcLDAP})
}

// --- concurrency ---

// testConcurrentPutDirectoryLink links one account to many entries at once:
// exactly one link lands, the others are conflicts.
func testConcurrentPutDirectoryLink(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "create", s.CreateAccount(ctx, account("acc-1", "alice")))
	errs := Race(50, func(i int) error {
		return s.PutDirectoryLink(ctx, dirLink(srcLDAP, fmt.Sprintf("ext-%02d", i), "acc-1"))
	})
	winner := oneWinner(t, "50 concurrent links of one account", errs, flows.ErrConflict)
	l, err := s.GetDirectoryLinkByAccount(ctx, "acc-1")
	must(t, "get", err)
	if winner >= 0 && l.ExternalID != fmt.Sprintf("ext-%02d", winner) {
		t.Errorf("acc-1 is linked to %s, want the winner's ext-%02d", l.ExternalID, winner)
	}
	n, err := s.CountDirectoryLinks(ctx, srcLDAP)
	must(t, "count", err)
	if n != 1 {
		t.Errorf("%d links, want 1", n)
	}
}

// --- every call in its own transaction ---

func (e eachInTx) GetDirectoryLinks(ctx context.Context, source string, externalIDs []string) ([]flows.DirectoryLink, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.DirectoryLink, error) {
		return tx.GetDirectoryLinks(ctx, source, externalIDs)
	})
}

func (e eachInTx) GetDirectoryLinkByAccount(ctx context.Context, accountID string) (flows.DirectoryLink, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.DirectoryLink, error) {
		return tx.GetDirectoryLinkByAccount(ctx, accountID)
	})
}

func (e eachInTx) PutDirectoryLink(ctx context.Context, l flows.DirectoryLink) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PutDirectoryLink(ctx, l) })
}

func (e eachInTx) MarkDirectorySeen(ctx context.Context, source, run string, externalIDs []string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.MarkDirectorySeen(ctx, source, run, externalIDs) })
}

func (e eachInTx) ListUnseenDirectoryLinks(ctx context.Context, source, run, after string, limit int) ([]flows.DirectoryLink, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.DirectoryLink, error) {
		return tx.ListUnseenDirectoryLinks(ctx, source, run, after, limit)
	})
}

func (e eachInTx) CountDirectoryLinks(ctx context.Context, source string) (int, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (int, error) { return tx.CountDirectoryLinks(ctx, source) })
}

func (e eachInTx) StageDirectoryEntries(ctx context.Context, source, run string, entries []flows.DirectoryEntry) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.StageDirectoryEntries(ctx, source, run, entries) })
}

func (e eachInTx) ListStagedDirectoryEntries(ctx context.Context, source, run, after string, limit int) ([]flows.DirectoryEntry, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.DirectoryEntry, error) {
		return tx.ListStagedDirectoryEntries(ctx, source, run, after, limit)
	})
}

func (e eachInTx) ClearStagedDirectoryEntries(ctx context.Context, source string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.ClearStagedDirectoryEntries(ctx, source) })
}

func (e eachInTx) GetDirectoryState(ctx context.Context, source string) (flows.DirectoryState, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.DirectoryState, error) { return tx.GetDirectoryState(ctx, source) })
}

func (e eachInTx) PutDirectoryState(ctx context.Context, st flows.DirectoryState) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PutDirectoryState(ctx, st) })
}

func (e eachInTx) ListDirectoryStates(ctx context.Context) ([]flows.DirectoryState, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.DirectoryState, error) { return tx.ListDirectoryStates(ctx) })
}
