package sms

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keystep/keystep/flows"
)

// Defaults and bounds of the retry policy; see the package doc.
const (
	DefaultTimeout = 10 * time.Second       // each attempt, when Timeout is zero
	DefaultRetries = 2                      // retries after the first attempt, when Retries is zero
	MaxRetries     = 10                     // the most Retries may ask for
	BaseBackoff    = 500 * time.Millisecond // the wait before the first retry, before jitter
	MaxBackoff     = 8 * time.Second        // the longest backoff, before jitter
	MaxRetryAfter  = 30 * time.Second       // the longest wait a Retry-After header gets
)

// maxAnswer is how much of an answer's body is read.
const maxAnswer = 64 << 10

// WaitFunc waits for d or until ctx is done, whichever comes first; it
// returns an error only in the second case. Tests inject one that records d
// and returns at once.
type WaitFunc func(ctx context.Context, d time.Duration) error

// poster sends one request with timeouts and retries.
type poster struct {
	client  *http.Client
	timeout time.Duration
	retries int
	wait    WaitFunc
	clock   flows.Clock
	rand    io.Reader
}

// answer is an HTTP response, read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// newPoster fills in the defaults.
func newPoster(client *http.Client, timeout time.Duration, retries int, wait WaitFunc, clock flows.Clock, r io.Reader) (*poster, error) {
	timeout, err := checkTimeout(timeout)
	if err != nil {
		return nil, err
	}
	retries, err = checkRetries(retries)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{
			// A redirected POST would become a GET; say so instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if wait == nil {
		wait = waitTimer
	}
	if clock == nil {
		clock = flows.SystemClock{}
	}
	if r == nil {
		r = rand.Reader
	}
	return &poster{client: client, timeout: timeout, retries: retries, wait: wait, clock: clock, rand: r}, nil
}

// do sends the request newReq makes (a new one for every attempt) until an
// attempt gets a final answer or the retries run out. It returns the last
// answer, whatever its status, or the last network error; attempts says how
// many were made.
func (p *poster) do(ctx context.Context, newReq func(ctx context.Context) (*http.Request, error)) (a *answer, attempts int, err error) {
	for attempt := 0; ; attempt++ {
		a, err = p.once(ctx, newReq)
		if err != nil && ctx.Err() != nil {
			// The caller gave up; its reason comes first.
			return nil, attempt + 1, fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		var retryAfter time.Duration
		var hasRetryAfter bool
		switch {
		case err != nil:
			var re *requestError
			if errors.As(err, &re) {
				return nil, attempt + 1, err // the request could not be made: final
			}
		case a.status == http.StatusTooManyRequests || a.status >= 500:
			retryAfter, hasRetryAfter = p.retryAfter(a.header)
		default:
			return a, attempt + 1, nil
		}
		if attempt >= p.retries {
			return a, attempt + 1, err
		}
		d := retryAfter
		if !hasRetryAfter {
			d = p.backoff(attempt)
		}
		if werr := p.wait(ctx, d); werr != nil {
			if err == nil {
				err = fmt.Errorf("last answer %s", http.StatusText(a.status))
			}
			return nil, attempt + 1, fmt.Errorf("waiting to retry: %w (%w)", werr, err)
		}
	}
}

// requestError is a request that could not be made; retrying cannot help.
type requestError struct{ err error }

func (e *requestError) Error() string { return "make request: " + e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// once makes one attempt.
func (p *poster) once(ctx context.Context, newReq func(ctx context.Context) (*http.Request, error)) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := newReq(ctx)
	if err != nil {
		return nil, &requestError{err}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// backoff is the wait before retry number attempt+1: BaseBackoff doubled
// per attempt up to MaxBackoff, then drawn uniformly from its upper half.
func (p *poster) backoff(attempt int) time.Duration {
	d := MaxBackoff
	if attempt < 16 {
		d = min(BaseBackoff<<attempt, MaxBackoff)
	}
	var b [8]byte
	if _, err := io.ReadFull(p.rand, b[:]); err != nil {
		return d // no randomness: wait the longest
	}
	half := d / 2
	return half + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(half+1))
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped at
// MaxRetryAfter.
func (p *poster) retryAfter(h http.Header) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(p.clock.Now())
	} else {
		return 0, false
	}
	return max(0, min(d, MaxRetryAfter)), true
}

// attemptsNote says how many attempts were made, when more than one.
func attemptsNote(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" (after %d attempts)", n)
}
