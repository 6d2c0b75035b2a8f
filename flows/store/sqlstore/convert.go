package sqlstore

import (
	"fmt"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
)

// unixNano stores t as unix nanoseconds, the zero time as 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano reads back what unixNano stored, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// joinMethods stores a method list as comma-joined text.
func joinMethods(ms []flows.Method) (string, error) {
	var b strings.Builder
	for i, m := range ms {
		if m == "" || strings.Contains(string(m), ",") {
			return "", fmt.Errorf("%w: method %q", flows.ErrInvalid, m)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(m))
	}
	return b.String(), nil
}

// splitMethods reads back what joinMethods stored; "" is no method (nil).
func splitMethods(s string) []flows.Method {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	ms := make([]flows.Method, len(parts))
	for i, p := range parts {
		ms[i] = flows.Method(p)
	}
	return ms
}

// blob normalises a byte slice read back from the database: empty is nil.
func blob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// usernameKey is the case-folded form usernames are unique under.
func usernameKey(username string) string {
	return strings.ToLower(username)
}
