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

// walkAudit calls fn with the audit events (of accountID, if set), newest
// first, a page at a time, until fn says stop or the log ends.
func (c *Console) walkAudit(ctx context.Context, accountID string, fn func(flows.AuditEvent) (stop bool)) error {
	var before int64 // 0: from the newest
	for {
		evs, err := c.flows.Audit(ctx, flows.AuditFilter{BeforeSeq: before, AccountID: accountID, Limit: auditPage, Newest: true})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if fn(ev) {
				return nil
			}
		}
		if len(evs) < auditPage {
			return nil
		}
		before = evs[len(evs)-1].Seq
	}
}

// scanAudit returns up to aq.Max matching events, newest first, reading
// back from the newest at most maxAuditScan events (or until events older
// than aq.From). more says whether it stopped with events left to read.
func (c *Console) scanAudit(ctx context.Context, aq auditQuery) (out []flows.AuditEvent, more bool, err error) {
	scanned := 0
	err = c.walkAudit(ctx, aq.AccountID, func(ev flows.AuditEvent) bool {
		if !aq.From.IsZero() && ev.Time.Before(aq.From) {
			return true
		}
		if scanned++; scanned > maxAuditScan || aq.match(ev) && len(out) == aq.Max {
			more = true
			return true
		}
		if aq.match(ev) {
			out = append(out, ev)
		}
		return false
	})
	if err != nil {
		return nil, false, err
	}
	return out, more, nil
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
	// Every event of the day is counted (none is kept), however many.
	err := c.walkAudit(ctx, "", func(ev flows.AuditEvent) bool {
		if ev.Time.Before(start) {
			return true
		}
		o := outcomeOf(ev.Action)
		if h := int(ev.Time.Sub(start) / time.Hour); o >= 0 && h < chartHours {
			counts[h][o]++
		}
		return false
	})
	if err != nil {
		return chart{}, err
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
