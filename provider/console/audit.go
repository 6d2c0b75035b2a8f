package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// auditPage is how many events the audit page reads from the store at a
// time, newest first.
const auditPage = 1000

// maxAuditScan bounds how many events one page reads looking for matches.
const maxAuditScan = 100_000

// auditQuery selects events, newest first.
type auditQuery struct {
	AccountID string
	Action    string // exact, or a prefix ending in "."
	From, To  time.Time
	Max       int // at most this many matches
}

// match reports whether ev matches the query's action and time range.
func (aq auditQuery) match(ev flows.AuditEvent) bool {
	if aq.Action != "" {
		if strings.HasSuffix(aq.Action, ".") {
			if !strings.HasPrefix(ev.Action, aq.Action) {
				return false
			}
		} else if ev.Action != aq.Action {
			return false
		}
	}
	if !aq.To.IsZero() && !ev.Time.Before(aq.To) {
		return false
	}
	return aq.From.IsZero() || !ev.Time.Before(aq.From)
}

// lastSeq finds the newest event's sequence number (0: none) in about
// 2·log2(n) reads of one event: the chain's numbers run from 1 with no
// gaps, so "is there an event after n-1" says whether n exists.
func (c *Console) lastSeq(ctx context.Context) (int64, error) {
	has := func(n int64) (bool, error) {
		evs, err := c.flows.Audit(ctx, flows.AuditFilter{AfterSeq: n - 1, Limit: 1})
		return len(evs) > 0, err
	}
	lo, hi := int64(0), int64(1)
	for {
		ok, err := has(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 { // event lo exists (or lo is 0), event hi does not
		mid := lo + (hi-lo)/2
		ok, err := has(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// scanAudit returns up to aq.Max matching events, newest first, reading
// back from the newest at most maxAuditScan events (or until events older
// than aq.From). more says whether it stopped with events left to read.
func (c *Console) scanAudit(ctx context.Context, aq auditQuery) (out []flows.AuditEvent, more bool, err error) {
	top, err := c.lastSeq(ctx)
	if err != nil {
		return nil, false, err
	}
	scanned := 0
	for hi := top; hi > 0; {
		lo := max(0, hi-auditPage)
		// With an account, the store's first (hi-lo) events of the
		// account after lo hold all of its events in (lo, hi].
		evs, err := c.flows.Audit(ctx, flows.AuditFilter{AfterSeq: lo, AccountID: aq.AccountID, Limit: int(hi - lo)})
		if err != nil {
			return nil, false, err
		}
		for i := len(evs) - 1; i >= 0; i-- {
			ev := evs[i]
			if ev.Seq > hi {
				continue
			}
			if !aq.From.IsZero() && ev.Time.Before(aq.From) {
				return out, false, nil
			}
			if aq.match(ev) {
				if len(out) == aq.Max {
					return out, true, nil
				}
				out = append(out, ev)
			}
		}
		scanned += int(hi - lo)
		hi = lo
		if scanned >= maxAuditScan && hi > 0 {
			return out, true, nil
		}
	}
	return out, false, nil
}

// auditRow is an event as the pages show it.
type auditRow struct {
	flows.AuditEvent
	Username string // the account's, when known
	Fraud    bool   // a user reported a sign-in they did not start
}

// auditRows adds the usernames (read once per account) and the fraud flag.
func (c *Console) auditRows(q *req, evs []flows.AuditEvent) []auditRow {
	names := map[string]string{}
	out := make([]auditRow, len(evs))
	for i, ev := range evs {
		out[i] = auditRow{AuditEvent: ev, Fraud: ev.Action == flows.AuditSignInFraud}
		if ev.AccountID == "" {
			continue
		}
		name, ok := names[ev.AccountID]
		if !ok {
			if a, err := c.flows.Store().GetAccount(q.ctx, ev.AccountID); err == nil {
				name = a.Username
			}
			names[ev.AccountID] = name
		}
		out[i].Username = name
	}
	return out
}

// auditView is the audit page's data.
type auditView struct {
	Account, Action, From, To string
	Events                    []auditRow
	More                      bool
	Max                       int
	Frauds                    int
	Actions                   []string
	Error                     string
}

// maxAuditRows bounds the events the audit page shows.
const maxAuditRows = 200

// auditActions are the actions the filter offers (any other can be typed).
var auditActions = []string{
	"signin.", flows.AuditSignInApproved, flows.AuditSignInDenied, flows.AuditSignInFraud, flows.AuditSignInExpired,
	flows.AuditSignInCancelled, flows.AuditSignInStarted, "account.", flows.AuditAccountCreated, flows.AuditAccountSuspended,
	flows.AuditAccountRestored, flows.AuditAccountRemoved, "device.", flows.AuditDeviceEnrolled, flows.AuditDeviceUnregistered,
	flows.AuditInvitationCreated, flows.AuditOverrideIssued, "code.", flows.AuditCodesLocked, flows.AuditCodesUnlocked,
	"console.", "directory.",
}

// formTime is the layout of the time filters (datetime-local, read as UTC).
const formTime = "2006-01-02T15:04"

// audit is GET /console/audit?account=&action=&from=&to=.
func (c *Console) audit(q *req) {
	qs := q.r.URL.Query()
	v := auditView{Account: strings.TrimSpace(qs.Get("account")), Action: strings.TrimSpace(qs.Get("action")),
		From: qs.Get("from"), To: qs.Get("to"), Max: maxAuditRows, Actions: auditActions}
	aq := auditQuery{Action: v.Action, Max: maxAuditRows}
	var problems []string
	if v.Account != "" {
		a, err := c.flows.FindAccount(q.ctx, v.Account)
		switch {
		case err == nil:
			aq.AccountID = a.ID
		case errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrInvalid):
			problems = append(problems, "there is no account "+v.Account)
		default:
			c.fail(q, "find the account", err)
			return
		}
	}
	for _, f := range []struct {
		in  string
		out *time.Time
		tag string
	}{{v.From, &aq.From, "from"}, {v.To, &aq.To, "to"}} {
		if f.in == "" {
			continue
		}
		t, err := time.Parse(formTime, f.in)
		if err != nil {
			problems = append(problems, "“"+f.tag+"” must be a date and time like 2026-11-27T09:30")
			continue
		}
		*f.out = t
	}
	if len(problems) > 0 {
		v.Error = strings.Join(problems, "; ")
		c.render(q, http.StatusBadRequest, "audit", "Audit log", "audit", v)
		return
	}
	evs, more, err := c.scanAudit(q.ctx, aq)
	if err != nil {
		c.fail(q, "read the audit log", err)
		return
	}
	v.Events, v.More = c.auditRows(q, evs), more
	for _, e := range v.Events {
		if e.Fraud {
			v.Frauds++
		}
	}
	c.render(q, http.StatusOK, "audit", "Audit log", "audit", v)
}

// auditLink is the audit page filtered on one action since a time.
func auditLink(action string, from time.Time) string {
	return "/console/audit?" + url.Values{"action": {action}, "from": {from.UTC().Format(formTime)}}.Encode()
}

// overviewView is the overview page's data.
type overviewView struct {
	Chart     chart
	Frauds    int
	FraudLink string
	Directory []directoryRow
	Active    int
	Suspended int
}

// overview is GET /console/: the chart of the last 24 hours' sign-ins,
// fraud reports, account counts and directory health.
func (c *Console) overview(q *req) {
	now := c.clock.Now().UTC()
	ch, err := c.signInChart(q.ctx, now)
	if err != nil {
		c.fail(q, "read the audit log", err)
		return
	}
	v := overviewView{Chart: ch, Frauds: ch.Totals[outcomeFraud], FraudLink: auditLink(flows.AuditSignInFraud, ch.Start)}
	as, err := c.flows.ListAccounts(q.ctx, flows.AccountFilter{})
	if err != nil {
		c.fail(q, "list the accounts", err)
		return
	}
	for _, a := range as {
		switch a.State {
		case flows.AccountActive:
			v.Active++
		case flows.AccountSuspended:
			v.Suspended++
		}
	}
	if v.Directory, err = c.directoryRows(q); err != nil {
		c.fail(q, "read the directory status", err)
		return
	}
	c.render(q, http.StatusOK, "overview", "Overview", "overview", v)
}

// signInChart counts the sign-ins of the 24 hours up to now's hour by
// outcome, from the audit log.
func (c *Console) signInChart(ctx context.Context, now time.Time) (chart, error) {
	start := now.Truncate(time.Hour).Add(-(chartHours - 1) * time.Hour)
	var counts [chartHours][numOutcomes]int
	evs, _, err := c.scanAudit(ctx, auditQuery{Action: "signin.", From: start, Max: maxAuditScan})
	if err != nil {
		return chart{}, err
	}
	for _, ev := range evs {
		o := outcomeOf(ev.Action)
		h := int(ev.Time.Sub(start) / time.Hour)
		if o < 0 || h < 0 || h >= chartHours {
			continue
		}
		counts[h][o]++
	}
	return drawChart(start, counts), nil
}

// directoryRow is a source's status on the pages.
type directoryRow struct {
	Name   string
	Health string
	Status directory.Status
}

// directoryRows reads every source's status.
func (c *Console) directoryRows(q *req) ([]directoryRow, error) {
	var out []directoryRow
	for _, src := range c.srv.DirectorySources() {
		st, err := src.Status(q.ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, directoryRow{Name: src.Name(), Health: st.Health, Status: st})
	}
	return out, nil
}

// directoryPage is GET /console/directory.
func (c *Console) directoryPage(q *req) {
	rows, err := c.directoryRows(q)
	if err != nil {
		c.fail(q, "read the directory status", err)
		return
	}
	c.render(q, http.StatusOK, "directory", "Directory", "directory", rows)
}

// directorySync is POST /console/directory/{source}/sync: the instance
// syncing the source (this one or another) starts a full sync now.
func (c *Console) directorySync(q *req) {
	name := q.r.PathValue("source")
	for _, src := range c.srv.DirectorySources() {
		if src.Name() != name {
			continue
		}
		if err := c.flows.RecordEvent(q.ctx, q.actor(), "directory.sync_requested", name+": full sync requested in the admin console"); err != nil {
			c.fail(q, "record the sync request", err)
			return
		}
		if err := src.RequestFullSync(q.ctx, 0); err != nil {
			c.fail(q, "request the sync", err)
			return
		}
		c.log.Info("directory sync requested", "directory", name, "admin", q.actor())
		q.sess.addFlash(false, fmt.Sprintf("Asked %s for a full sync now; its status shows the result.", name))
		c.redirect(q, "/console/directory")
		return
	}
	c.notFound(q)
}
