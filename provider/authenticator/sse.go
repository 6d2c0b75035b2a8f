package authenticator

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// SSEEvent is one server-sent event as the WHATWG EventSource rules
// assemble it from "event:", "data:" and "id:" lines.
type SSEEvent struct {
	Type string // the "event:" field; "message" when none was given
	Data string // the "data:" lines joined with "\n"
	ID   string // the last "id:" seen on the stream
}

// MaxSSELine bounds one line of an event stream; a longer line is an error
// rather than a reason to buffer without end.
const MaxSSELine = 1 << 20

// ErrSSELineTooLong is returned by SSEReader.Next for a line over MaxSSELine.
var ErrSSELineTooLong = errors.New("event stream line is too long")

// SSEReader parses a text/event-stream.
type SSEReader struct {
	sc     *bufio.Scanner
	lastID string
}

// NewSSEReader returns a reader of the event stream r.
func NewSSEReader(r io.Reader) *SSEReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxSSELine)
	sc.Split(scanSSELines)
	return &SSEReader{sc: sc}
}

// Next returns the next event. It returns io.EOF when the stream ends
// (an event not closed by a blank line is dropped, as the standard says).
func (r *SSEReader) Next() (SSEEvent, error) {
	var typ string
	var data strings.Builder
	hasData := false
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" { // dispatch
			if !hasData {
				typ = ""
				continue
			}
			ev := SSEEvent{Type: typ, Data: data.String(), ID: r.lastID}
			if ev.Type == "" {
				ev.Type = "message"
			}
			return ev, nil
		}
		if line[0] == ':' { // comment (keep-alive)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID = value
			}
		}
		// "retry" and unknown fields are ignored.
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return SSEEvent{}, ErrSSELineTooLong
		}
		return SSEEvent{}, err
	}
	return SSEEvent{}, io.EOF
}

// scanSSELines splits an event stream into lines ended by "\r\n", "\n" or
// "\r". A leading byte-order mark is not stripped here: servers of this API
// send none, and the field it precedes is then simply unknown.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		// '\r': swallow a '\n' right after it, which may not have arrived yet.
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil // need one more byte
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}
