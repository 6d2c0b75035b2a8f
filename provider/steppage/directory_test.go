package steppage

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keystep/keystep/flows"
)

// switchChecker is a live check that fails until told otherwise.
type switchChecker struct {
	mu   sync.Mutex
	fail bool
}

func (c *switchChecker) set(fail bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = fail
}

func (c *switchChecker) CheckAccount(context.Context, flows.Account) (flows.AccountState, string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		// The cause is another flows error: the page must still say the
		// directory is unavailable.
		return "", "", false, errors.Join(errors.New("ldaps://dc1.corp.example: i/o timeout"), flows.ErrConflict)
	}
	return flows.AccountActive, "", true, nil
}

// TestDirectoryUnavailable: a sign-in whose live directory check fails
// (fail-closed) shows a clear message with Try again, never the LDAP
// error; once the directory answers, trying again starts the sign-in.
func TestDirectoryUnavailable(t *testing.T) {
	checker := &switchChecker{fail: true}
	e := newEnvWith(t, envOptions{checker: checker})
	a := e.addUser("jo")
	e.enroll("jo")
	id := e.newRequest(a)
	b := e.browser()

	r := b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	checkPage(t, r)
	wantText(t, r, "Account not confirmed", "Your directory could not confirm your account. Try again in a moment", "Try again")
	for _, leak := range []string{"ldaps://", "timeout", "conflict"} {
		if strings.Contains(strings.ToLower(r.body), leak) {
			t.Errorf("the page shows the cause (%q):\n%s", leak, r.body)
		}
	}
	if ar := e.authRequest(id); ar.SignInID != "" {
		t.Fatalf("a sign-in was started: %+v", ar)
	}

	checker.set(false)
	r = b.post("/step/"+id+"/retry", nil)
	wantStatus(t, r, http.StatusSeeOther)
	r = b.get("/step/" + id)
	wantStatus(t, r, http.StatusOK)
	if ar := e.authRequest(id); ar.SignInID == "" {
		t.Fatalf("no sign-in after the retry: %+v", ar)
	}

	// Leaving from the page tells the app why.
	checker.set(true)
	id2 := e.newRequest(a)
	wantStatus(t, b.get("/step/"+id2), http.StatusOK)
	wantStatus(t, b.post("/step/"+id2+"/abort", url.Values{"reason": {RefusedUnavailable}}), http.StatusSeeOther)
	_, refused := e.reqs.calls()
	if len(refused) != 1 || refused[0] != (refusal{id2, RefusedUnavailable}) {
		t.Fatalf("refused = %+v", refused)
	}
}
