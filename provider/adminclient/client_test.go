package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

func TestDecodeProblem(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        api.Problem
		wantMsg     string
		is          error
	}{
		{
			name: "problem", status: 403, contentType: "application/problem+json",
			body:    `{"type":"urn:keystep:problem:account-suspended","title":"account is suspended","status":403,"detail":"contact your IT administrator"}`,
			want:    api.Problem{Type: api.ProblemAccountSuspended, Title: "account is suspended", Status: 403, Detail: "contact your IT administrator"},
			wantMsg: "account is suspended: contact your IT administrator", is: flows.ErrAccountSuspended,
		},
		{
			name: "problem with charset and no status", status: 410, contentType: "application/problem+json; charset=utf-8",
			body:    `{"type":"urn:keystep:problem:account-removed","title":"account has been removed"}`,
			want:    api.Problem{Type: api.ProblemAccountRemoved, Title: "account has been removed", Status: 410},
			wantMsg: "account has been removed", is: flows.ErrAccountRemoved,
		},
		{
			name: "unknown problem type", status: 405, contentType: "application/problem+json",
			body:    `{"type":"about:blank","title":"Method Not Allowed","status":405,"detail":"PUT is not allowed here"}`,
			want:    api.Problem{Type: "about:blank", Title: "Method Not Allowed", Status: 405, Detail: "PUT is not allowed here"},
			wantMsg: "Method Not Allowed: PUT is not allowed here",
		},
		{
			name: "proxy page", status: 502, contentType: "text/html",
			body:    "<html>\n  bad gateway\n</html>",
			want:    api.Problem{Status: 502, Title: "server answered 502 Bad Gateway", Detail: "<html> bad gateway </html>"},
			wantMsg: "server answered 502 Bad Gateway: <html> bad gateway </html>",
		},
		{
			name: "broken json", status: 500, contentType: "application/problem+json", body: `{"type":`,
			want:    api.Problem{Status: 500, Title: "server answered 500 Internal Server Error", Detail: `{"type":`},
			wantMsg: `server answered 500 Internal Server Error: {"type":`,
		},
		{
			name: "binary body", status: 500, contentType: "application/octet-stream", body: "\x00\x01",
			want:    api.Problem{Status: 500, Title: "server answered 500 Internal Server Error"},
			wantMsg: "server answered 500 Internal Server Error",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := DecodeProblem(c.status, c.contentType, []byte(c.body))
			if e.Problem != c.want {
				t.Errorf("problem = %+v, want %+v", e.Problem, c.want)
			}
			if e.Error() != c.wantMsg {
				t.Errorf("Error() = %q, want %q", e.Error(), c.wantMsg)
			}
			wrapped := wrap(e, "doing things")
			if c.is != nil && !errors.Is(wrapped, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", wrapped, c.is)
			}
			if errors.Is(wrapped, flows.ErrNotFound) {
				t.Errorf("errors.Is(%v, ErrNotFound) = true", wrapped)
			}
			if p, ok := AsProblem(wrapped); !ok || p != c.want {
				t.Errorf("AsProblem = %+v, %v", p, ok)
			}
			if c.want.Type != "" && !HasType(wrapped, c.want.Type) {
				t.Errorf("HasType(%q) = false", c.want.Type)
			}
		})
	}
}

func TestClip(t *testing.T) {
	s := strings.Repeat("é", 150) // 300 bytes
	got := clip(s, 201)
	if !strings.HasSuffix(got, "…") || len(got) > 201+len("…") || !json.Valid([]byte(`"`+got+`"`)) {
		t.Errorf("clip cut a rune or kept too much: %q", got)
	}
}

// fakeServer answers admin calls from a table of handlers and checks the
// bearer token on each.
func fakeServer(t *testing.T, routes map[string]http.HandlerFunc) *Client {
	t.Helper()
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer secret-token-0123456789" {
				writeProblem(w, api.Problem{Type: api.ProblemUnauthorized, Title: "unauthorized", Status: 401})
				return
			}
			h(w, r)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", "secret-token-0123456789\n", WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblem(w http.ResponseWriter, p api.Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func TestClientCalls(t *testing.T) {
	ctx := context.Background()
	c := fakeServer(t, map[string]http.HandlerFunc{
		"POST /admin/v1/users": func(w http.ResponseWriter, r *http.Request) {
			var n api.NewUser
			if err := json.NewDecoder(r.Body).Decode(&n); err != nil || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("bad body: %v", err)
			}
			if n.Username == "taken" {
				writeProblem(w, api.Problem{Type: api.ProblemConflict, Title: "already exists", Status: 409, Detail: `username "taken"`})
				return
			}
			writeJSON(w, api.User{ID: "id-1", Username: n.Username, Email: n.Email, State: "active"})
		},
		"GET /admin/v1/users": func(w http.ResponseWriter, r *http.Request) {
			if got := r.URL.RawQuery; got != "include_removed=true&state=suspended" {
				t.Errorf("query = %q", got)
			}
			writeJSON(w, api.UserList{Users: []api.User{{Username: "a"}, {Username: "b"}}})
		},
		"POST /admin/v1/users/{user}/devices/{device}/unregister": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("user") != "a/b c" || r.PathValue("device") != "dev-1" {
				t.Errorf("path values %q %q (raw path %q)", r.PathValue("user"), r.PathValue("device"), r.URL.EscapedPath())
			}
			var u api.Unregister
			json.NewDecoder(r.Body).Decode(&u)
			writeJSON(w, api.Device{ID: "dev-1", State: "unregistered", UnregisterReason: u.Reason})
		},
		"GET /admin/v1/audit": func(w http.ResponseWriter, r *http.Request) {
			if got := r.URL.RawQuery; got != "account=acc&after=7&limit=10&wait=1m0s" {
				t.Errorf("query = %q", got)
			}
			writeJSON(w, api.AuditList{Events: []api.AuditEvent{{Seq: 8}}})
		},
	})
	u, err := c.AddUser(ctx, api.NewUser{Username: "alice", Email: "alice@example.com"})
	if err != nil || u.ID != "id-1" || u.Email != "alice@example.com" {
		t.Fatalf("AddUser = %+v, %v", u, err)
	}
	_, err = c.AddUser(ctx, api.NewUser{Username: "taken"})
	if !errors.Is(err, flows.ErrConflict) || !strings.Contains(err.Error(), `add user "taken": already exists: username "taken"`) {
		t.Fatalf("AddUser(taken) error = %v", err)
	}
	us, err := c.ListUsers(ctx, "suspended", true)
	if err != nil || len(us) != 2 {
		t.Fatalf("ListUsers = %v, %v", us, err)
	}
	d, err := c.UnregisterDevice(ctx, "a/b c", "dev-1", "lost")
	if err != nil || d.UnregisterReason != "lost" {
		t.Fatalf("UnregisterDevice = %+v, %v", d, err)
	}
	evs, err := c.Audit(ctx, 7, 10, "acc", 5*time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Audit = %v, %v", evs, err)
	}
	_, err = c.GetUser(ctx, "nobody")
	if p, ok := AsProblem(err); !ok || p.Status != 404 || p.Detail != "404 page not found" {
		t.Fatalf("GetUser on a missing route = %v", err) // the mux's 404 is text, not a problem
	}
}

func TestBadToken(t *testing.T) {
	c := fakeServer(t, map[string]http.HandlerFunc{"GET /admin/v1/audit/verify": func(w http.ResponseWriter, r *http.Request) {}})
	c.token = "wrong"
	_, err := c.VerifyAudit(context.Background())
	if !HasType(err, api.ProblemUnauthorized) {
		t.Fatalf("error = %v, want unauthorized", err)
	}
}

func TestWaitSignInPollsUntilFinal(t *testing.T) {
	var polls atomic.Int32
	c := fakeServer(t, map[string]http.HandlerFunc{
		"GET /admin/v1/signins/{id}": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("wait") != "2s" {
				t.Errorf("wait = %q", r.URL.Query().Get("wait"))
			}
			status := "pending"
			if polls.Add(1) == 3 {
				status = "approved"
			}
			writeJSON(w, api.SignIn{ID: r.PathValue("id"), Status: status})
		},
	})
	s, err := c.WaitSignIn(context.Background(), "sgn", 2*time.Second)
	if err != nil || s.Status != "approved" || polls.Load() != 3 {
		t.Fatalf("WaitSignIn = %+v, %v after %d polls", s, err, polls.Load())
	}
}

func TestWaitSignInEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := fakeServer(t, map[string]http.HandlerFunc{
		"GET /admin/v1/signins/{id}": func(w http.ResponseWriter, r *http.Request) {
			cancel() // the caller gives up while the server holds the poll
			<-r.Context().Done()
		},
	})
	_, err := c.WaitSignIn(ctx, "sgn", time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New("ftp://x", "t"); err == nil {
		t.Error("New accepted an ftp URL")
	}
	if _, err := New("http://x", "  "); err == nil {
		t.Error("New accepted an empty token")
	}
}

func TestReadErrorBoundsBody(t *testing.T) {
	resp := &http.Response{StatusCode: 500, Header: http.Header{"Content-Type": {"text/plain"}},
		Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 10<<20)))}
	e := ReadError(resp).(*Error)
	if len(e.Problem.Detail) > 210 {
		t.Fatalf("detail is %d bytes", len(e.Problem.Detail))
	}
}
