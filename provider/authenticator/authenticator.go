// Package authenticator is keystep's reference authenticator: a complete
// stand-in for the phone app, used by `keystep device` and by end-to-end
// tests. It enrolls with invitation links, keeps one P-256 key per
// enrollment in a state file, lists and streams pending sign-in requests,
// approves them with the number shown on the sign-in screen, denies or
// reports them, and scans sign-in QR codes.
//
// Every device API call after enrollment is signed: the api.Header*
// headers carry the device id, the time, a fresh nonce and an ES256
// signature over flows.RequestPayload, whose origin is the server URL of the
// enrollment link exactly as given.
package authenticator

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

// DefaultTimeout bounds one device API call (not the request stream).
const DefaultTimeout = 30 * time.Second

var b64 = base64.RawURLEncoding

// Authenticator is one device: a state file of enrollments and the clients
// that talk to their servers. It is safe for concurrent use within one
// process; the state file is re-read before each change so that another
// process's enrollment is not lost.
type Authenticator struct {
	path       string
	now        func() time.Time
	http       *http.Client // calls, with a timeout
	stream     *http.Client // the request stream, without one
	name       string
	mu         sync.Mutex // serialises state file changes
	retryDelay time.Duration
}

// Option changes how Open builds an Authenticator.
type Option func(*Authenticator)

// WithClock sets where the authenticator gets the time it signs.
func WithClock(now func() time.Time) Option { return func(a *Authenticator) { a.now = now } }

// WithHTTPClient sets the client for ordinary calls; the request stream
// uses a copy of it without its Timeout.
func WithHTTPClient(hc *http.Client) Option { return func(a *Authenticator) { a.http = hc } }

// WithDeviceName sets the name the device gives itself when it enrolls.
func WithDeviceName(name string) Option { return func(a *Authenticator) { a.name = name } }

// WithStreamRetry sets how long Stream waits before it reconnects a
// dropped request stream (default one second, doubling to 30 s).
func WithStreamRetry(d time.Duration) Option { return func(a *Authenticator) { a.retryDelay = d } }

// Open returns the authenticator whose state lives in the file at path. It
// reads the file at once, so a bad or unsafe state file is refused here; a
// missing one is an authenticator with no enrollments.
func Open(path string, opts ...Option) (*Authenticator, error) {
	a := &Authenticator{path: path, now: time.Now, name: "keystep reference authenticator", retryDelay: time.Second}
	for _, o := range opts {
		o(a)
	}
	if a.http == nil {
		a.http = &http.Client{Timeout: DefaultTimeout}
	}
	s := *a.http
	s.Timeout = 0
	a.stream = &s
	if _, err := LoadState(path); err != nil {
		return nil, err
	}
	return a, nil
}

// Enrollments returns the accounts enrolled on this device.
func (a *Authenticator) Enrollments() ([]Enrollment, error) {
	st, err := LoadState(a.path)
	return st.Enrollments, err
}

// update applies fn to the current state file and saves the result.
func (a *Authenticator) update(fn func(*State) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, err := LoadState(a.path)
	if err != nil {
		return err
	}
	if err := fn(&st); err != nil {
		return err
	}
	return SaveState(a.path, st)
}

// Enroll redeems an enrollment link: it makes a new P-256 key, proves it
// holds it by signing flows.EnrollPayload, registers it with the link's
// server and saves the enrollment. Enrolling the same account at the same
// server again replaces the older enrollment.
func (a *Authenticator) Enroll(ctx context.Context, link string) (Enrollment, error) {
	l, err := flows.ParseEnrollLink(link)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: new key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	msg, err := flows.EnrollPayload(l.Server, l.Token, pub)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	body, err := json.Marshal(api.EnrollRequest{Token: l.Token, PublicKey: b64.EncodeToString(pub), Signature: b64.EncodeToString(sig), Name: a.name})
	if err != nil {
		return Enrollment{}, fmt.Errorf("enroll: %w", err)
	}
	var out api.EnrollResponse
	if err := a.send(ctx, nil, l.Server, http.MethodPost, api.PathEnroll, body, &out); err != nil {
		return Enrollment{}, fmt.Errorf("enroll at %s: %w", l.Server, err)
	}
	if out.DeviceID == "" || out.Account.ID == "" {
		return Enrollment{}, fmt.Errorf("enroll at %s: the server's answer names no device or account", l.Server)
	}
	e := Enrollment{
		Server: l.Server, DeviceID: out.DeviceID, AccountID: out.Account.ID, Username: out.Account.Username,
		DisplayName: out.Account.DisplayName, EnrolledAt: a.now().UTC().Truncate(time.Second), PrivateKey: b64.EncodeToString(priv),
	}
	err = a.update(func(st *State) error {
		st.Enrollments = slices.DeleteFunc(st.Enrollments, func(x Enrollment) bool {
			return x.Server == e.Server && x.AccountID == e.AccountID
		})
		st.Enrollments = append(st.Enrollments, e)
		return nil
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("enrolled at %s as device %s, but could not save it: %w", l.Server, e.DeviceID, err)
	}
	return e, nil
}

// Request is a pending sign-in request and the enrollment it is for.
type Request struct {
	Enrollment Enrollment
	api.SignInRequest
}

// Pending asks every enrollment's server for its pending requests. It
// returns what it could get, with an error naming each enrollment whose
// server did not answer.
func (a *Authenticator) Pending(ctx context.Context) ([]Request, error) {
	return a.pending(ctx, "")
}

// pending lists the pending requests of each enrollment in turn; with id
// set, it stops at the first request with that id and returns it alone.
func (a *Authenticator) pending(ctx context.Context, id string) ([]Request, error) {
	es, err := a.Enrollments()
	if err != nil {
		return nil, err
	}
	var out []Request
	var errs []error
	for _, e := range es {
		var list api.RequestList
		if err := a.send(ctx, &e, e.Server, http.MethodGet, api.PathRequests, nil, &list); err != nil {
			errs = append(errs, fmt.Errorf("%s: pending requests: %w", e.Label(), err))
			continue
		}
		for _, r := range list.Requests {
			req := Request{Enrollment: e, SignInRequest: r}
			if id != "" && r.ID == id {
				return []Request{req}, nil
			}
			out = append(out, req)
		}
	}
	return out, errors.Join(errs...)
}

// find asks each enrollment's server for its pending requests until one
// holds the request id: that tells which enrollment the request is for.
func (a *Authenticator) find(ctx context.Context, id string) (Request, error) {
	rs, err := a.pending(ctx, id)
	if len(rs) == 1 && rs[0].ID == id {
		return rs[0], nil
	}
	notFound := fmt.Errorf("no pending request %q for any account on this device (it may have been decided or expired): %w", id, flows.ErrNotFound)
	return Request{}, errors.Join(notFound, err)
}

// Approve approves a pending push request with the number shown on the
// sign-in screen. A wrong number denies the sign-in: the server answers
// api.ProblemWrongNumber.
func (a *Authenticator) Approve(ctx context.Context, id, number string) (api.DecisionResponse, error) {
	r, err := a.find(ctx, id)
	if err != nil {
		return api.DecisionResponse{}, fmt.Errorf("approve: %w", err)
	}
	return a.ApproveRequest(ctx, r, number)
}

// ApproveRequest approves a request the app already has (from Pending or
// its request stream) without asking the server for it again, as an app
// does when the user taps the request on screen.
func (a *Authenticator) ApproveRequest(ctx context.Context, r Request, number string) (api.DecisionResponse, error) {
	return a.decide(ctx, r, flows.DecisionApprove, flows.MethodPush, number)
}

// Deny denies a pending push request; with report it also tells the
// server that the user did not start this sign-in.
func (a *Authenticator) Deny(ctx context.Context, id string, report bool) (api.DecisionResponse, error) {
	r, err := a.find(ctx, id)
	if err != nil {
		return api.DecisionResponse{}, fmt.Errorf("deny: %w", err)
	}
	d := flows.DecisionDeny
	if report {
		d = flows.DecisionReport
	}
	return a.decide(ctx, r, d, flows.MethodPush, "")
}

// Scanned is the outcome of scanning a sign-in QR code.
type Scanned struct {
	Request  Request
	Decision api.DecisionResponse
}

// Scan handles a scanned sign-in QR code: it claims the sign-in at the QR's
// server with the enrollment there that it belongs to, then approves it by
// method qr with the QR's secret.
func (a *Authenticator) Scan(ctx context.Context, payload string) (Scanned, error) {
	qr, err := flows.ParseSignInQR(payload)
	if err != nil {
		return Scanned{}, fmt.Errorf("scan: %w", err)
	}
	es, err := a.Enrollments()
	if err != nil {
		return Scanned{}, err
	}
	body, err := json.Marshal(api.QRClaimRequest{Payload: strings.TrimSpace(payload)})
	if err != nil {
		return Scanned{}, fmt.Errorf("scan: %w", err)
	}
	var errs []error
	for _, e := range es {
		if e.Server != qr.Server {
			continue
		}
		var sr api.SignInRequest
		if err := a.send(ctx, &e, e.Server, http.MethodPost, api.PathQRClaim, body, &sr); err != nil {
			errs = append(errs, fmt.Errorf("%s: claim QR sign-in: %w", e.Label(), err))
			continue
		}
		r := Request{Enrollment: e, SignInRequest: sr}
		d, err := a.decide(ctx, r, flows.DecisionApprove, flows.MethodQR, qr.Secret)
		return Scanned{Request: r, Decision: d}, err
	}
	if len(errs) == 0 {
		return Scanned{}, fmt.Errorf("scan: this QR code is for %s, where no account is enrolled on this device", qr.Server)
	}
	// With several accounts at one server, the others answer wrong-account:
	// report the error of the one that may have been meant.
	slices.SortStableFunc(errs, func(x, y error) int {
		return boolInt(errors.Is(x, flows.ErrWrongAccount)) - boolInt(errors.Is(y, flows.ErrWrongAccount))
	})
	return Scanned{}, fmt.Errorf("scan: %w", errs[0])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decide signs and sends a decision on r.
func (a *Authenticator) decide(ctx context.Context, r Request, d flows.Decision, m flows.Method, number string) (api.DecisionResponse, error) {
	e := r.Enrollment
	key, err := e.Key()
	if err != nil {
		return api.DecisionResponse{}, err
	}
	t := a.now()
	msg, err := flows.DecisionPayload(e.Server, r.ID, r.Nonce, d, m, number, t)
	if err != nil {
		return api.DecisionResponse{}, fmt.Errorf("%s request %s: %w", d, r.ID, err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		return api.DecisionResponse{}, fmt.Errorf("%s request %s: %w", d, r.ID, err)
	}
	body, err := json.Marshal(api.DecisionRequest{Decision: string(d), Method: string(m), Number: number, Time: t.Unix(), Signature: b64.EncodeToString(sig)})
	if err != nil {
		return api.DecisionResponse{}, fmt.Errorf("%s request %s: %w", d, r.ID, err)
	}
	var out api.DecisionResponse
	path := strings.Replace(api.PathDecision, "{id}", url.PathEscape(r.ID), 1)
	if err := a.send(ctx, &e, e.Server, http.MethodPost, path, body, &out); err != nil {
		return api.DecisionResponse{}, fmt.Errorf("%s request %s: %w", d, r.ID, err)
	}
	return out, nil
}

// AccountStatus is what Accounts learned of one enrollment.
type AccountStatus struct {
	Enrollment Enrollment
	// State is active or suspended as the server says; unregistered when the
	// device was unregistered; removed when the account is gone (it has then
	// been dropped from the state file); unknown when the server could not
	// be asked (Err says why).
	State string
	Err   error
}

// Account states as Accounts reports them, beyond the server's own.
const (
	StateUnregistered = "unregistered"
	StateRemoved      = "removed"
	StateUnknown      = "unknown"
)

// Accounts asks each enrollment's server for its account. An enrollment
// whose account was removed is dropped from the state file: the account
// disappears from the app.
func (a *Authenticator) Accounts(ctx context.Context) ([]AccountStatus, error) {
	es, err := a.Enrollments()
	if err != nil {
		return nil, err
	}
	out := make([]AccountStatus, 0, len(es))
	var removed []Enrollment
	for _, e := range es {
		var v api.AccountView
		err := a.send(ctx, &e, e.Server, http.MethodGet, api.PathDeviceAccount, nil, &v)
		st := AccountStatus{Enrollment: e, State: v.State}
		switch {
		case err == nil:
			st.Enrollment.Username, st.Enrollment.DisplayName = v.Username, v.DisplayName
		case adminclient.HasType(err, api.ProblemAccountRemoved):
			st.State, st.Err = StateRemoved, err
			removed = append(removed, e)
		case adminclient.HasType(err, api.ProblemDeviceUnregistered):
			st.State, st.Err = StateUnregistered, err
		default:
			st.State, st.Err = StateUnknown, fmt.Errorf("%s: %w", e.Label(), err)
		}
		out = append(out, st)
	}
	if len(removed) > 0 {
		err := a.update(func(s *State) error {
			s.Enrollments = slices.DeleteFunc(s.Enrollments, func(x Enrollment) bool {
				return slices.ContainsFunc(removed, func(r Enrollment) bool { return r.Server == x.Server && r.DeviceID == x.DeviceID })
			})
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("drop removed accounts: %w", err)
		}
	}
	return out, nil
}

// newRequest builds a device API request to the server's URL followed by
// pathQuery (an api.Path* with its query). With e set it carries the
// device's signature headers over flows.RequestPayload. The path signed is
// pathQuery itself, relative to the origin that the payload names: with the
// server at the root of its host that is the request URI the server sees,
// and behind a proxy that strips the public URL's path it still is.
func (a *Authenticator) newRequest(ctx context.Context, e *Enrollment, server, method, pathQuery string, body []byte) (*http.Request, error) {
	target := strings.TrimRight(server, "/") + pathQuery
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e == nil {
		return req, nil
	}
	key, err := e.Key()
	if err != nil {
		return nil, err
	}
	t := a.now()
	nonce := flows.NewSecret(16)
	msg, err := flows.RequestPayload(e.Server, method, pathQuery, t, nonce, body)
	if err != nil {
		return nil, err
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		return nil, err
	}
	req.Header.Set(api.HeaderDevice, e.DeviceID)
	req.Header.Set(api.HeaderTime, strconv.FormatInt(t.Unix(), 10))
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, b64.EncodeToString(sig))
	return req, nil
}

// send makes one call and decodes a 2xx answer into out; other answers
// become *adminclient.Error with the server's problem document.
func (a *Authenticator) send(ctx context.Context, e *Enrollment, server, method, pathQuery string, body []byte, out any) error {
	req, err := a.newRequest(ctx, e, server, method, pathQuery, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return adminclient.ReadAnswer(resp, out)
}
